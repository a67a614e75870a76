# -*- test-case-name: tests.test_tap,tests.test_routertap -*-
"""
twistd plugins for xmppcomp: C{twistd xmppcomp} (a component) and
C{twistd xmppcomp-router} (the receiving side). Lazy: nothing of xmppcomp is
imported until a plugin is used.
"""

from twisted.application.service import ServiceMaker

xmppcomp = ServiceMaker(
    "xmppcomp",
    "xmppcomp.tap",
    "An XMPP server component with the XEP-0070 HTTP-auth confirmer and XTLS",
    "xmppcomp",
)

xmppcompRouter = ServiceMaker(
    "xmppcomp-router",
    "xmppcomp.routertap",
    "An XMPP router accepting server components (XEP-0225 with TLS and "
    "SASL, and XEP-0114)",
    "xmppcomp-router",
)
