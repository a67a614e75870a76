# -*- test-case-name: tests.test_package -*-
"""
xmppcomp: a Twisted framework for XMPP server components.

The public API, re-exported (loaded on first use, so that importing a
submodule such as C{xmppcomp.ns} stays cheap):

  - L{Component}: the initiating side as a service (XEP-0225 or XEP-0114).
  - L{RouterService}, L{Router}: the receiving side.
  - L{ComponentConfig}, L{RouterConfig}, L{SecretRef}: configuration values.
  - L{ConfigError}, L{ListenError}: a configuration that cannot be used, a
    listener that cannot listen (each says what to change).
  - L{XTLSHandler}, L{XTLSConfiguration}: end-to-end TLS over IQs.
  - L{makeConfirmer}, L{ConfirmationRequester}, L{ConfirmationResponder}:
    XEP-0070 HTTP authentication via XMPP.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Component": "xmppcomp.component",
    "ComponentStream": "xmppcomp.component",
    "Router": "xmppcomp.router.service",
    "RouterService": "xmppcomp.router.service",
    "RouterConfig": "xmppcomp.config",
    "ComponentConfig": "xmppcomp.config",
    "SecretRef": "xmppcomp.config",
    "ConfigError": "xmppcomp.config",
    "ListenError": "xmppcomp.listening",
    "XTLSHandler": "xmppcomp.xtls",
    "XTLSConfiguration": "xmppcomp.xtls",
    "Tunnel": "xmppcomp.xtls",
    "makeConfirmer": "xmppcomp.httpauth",
    "ConfirmationRequester": "xmppcomp.httpauth",
    "ConfirmationResponder": "xmppcomp.httpauth",
    "AccessRules": "xmppcomp.httpauth",
    "AccessRule": "xmppcomp.httpauth",
}

__all__ = [
    "AccessRule",
    "AccessRules",
    "Component",
    "ComponentConfig",
    "ComponentStream",
    "ConfigError",
    "ConfirmationRequester",
    "ConfirmationResponder",
    "ListenError",
    "Router",
    "RouterConfig",
    "RouterService",
    "SecretRef",
    "Tunnel",
    "XTLSConfiguration",
    "XTLSHandler",
    "makeConfirmer",
]


# Any: the names it loads are of many types. (Importing them under
# TYPE_CHECKING would type them, but pydoctor would then document them
# here instead of in their modules.)
def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError("module 'xmppcomp' has no attribute %r" % (name,)) from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
