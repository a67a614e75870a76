# -*- test-case-name: tests.test_testing -*-
"""
Public helpers for tests of code built on xmppcomp, and for xmppcomp's own:
everything runs in memory, with no network and no real TLS, on a clock the
test advances.

Components end to end:
  - L{MemoryRouter}: a router that components connect to, with the real
    receiving streams (XEP-0225 with SCRAM and hostname bind, XEP-0114)
    and a real L{Router<xmppcomp.router.service.Router>}; give components
    C{endpointFactory=router.endpointFactory}.
  - L{MemoryEndpoint}: a client endpoint that connects to any server
    factory in memory; L{MemoryConnection}: the two protocols it
    connected, which the test pumps.
  - L{FakeTLSTransport}: a
    L{StringTransport<twisted.internet.testing.StringTransport>} that
    records C{startTLS} instead of doing TLS; L{PretendTLS}: TLS options
    for it.

Handlers alone:
  - L{StanzaRouter}: routes stanzas, as XML text, between wokkel handlers
    attached to it, with no stream negotiation (L{StanzaEnd}: one
    entity's end).

Certificates:
  - L{makeCertificateAuthority} (a L{CertificateAuthority}) issues
    server and client certificates with DNS-ID and XmppAddr names;
    L{selfSigned} makes one to pin; L{writePem} writes one to files.

Nothing here is fit for production use.
"""

from xmppcomp.testing._certificates import (
    CertificateAuthority,
    makeCertificateAuthority,
    selfSigned,
    writePem,
)
from xmppcomp.testing._memory import (
    FakeTLSTransport,
    MemoryConnection,
    MemoryEndpoint,
    MemoryRouter,
    PretendTLS,
)
from xmppcomp.testing._stanzas import StanzaEnd, StanzaRouter

__all__ = [
    "CertificateAuthority",
    "FakeTLSTransport",
    "MemoryConnection",
    "MemoryEndpoint",
    "MemoryRouter",
    "PretendTLS",
    "StanzaEnd",
    "StanzaRouter",
    "makeCertificateAuthority",
    "selfSigned",
    "writePem",
]
