# -*- test-case-name: tests.test_xtls_e2e -*-
"""
Helpers of the XTLS tests: two XTLS handlers connected through a
L{StanzaRouter<xmppcomp.testing.StanzaRouter>} (L{Pair}), and an observer
that records tunnel events (L{Recorder}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.words.protocols.jabber.jid import JID
from zope.interface import implementer

from xmppcomp.testing import CertificateAuthority, StanzaEnd, StanzaRouter, makeCertificateAuthority
from xmppcomp.xtls import ITunnelObserver, XTLSConfiguration, XTLSHandler


def attachHandler(
    router: StanzaRouter, domain: str, handler: XTLSHandler, clock: Clock
) -> StanzaEnd:
    """
    Attach C{handler} to a new end of C{router} for C{domain}, with
    C{clock} as its stream manager's clock.
    """
    return router.attach(domain, handler, clock)


class Pair:
    """
    Two XTLS handlers, for C{alice.example} and C{bob.example}, with
    certificates from one authority, connected through a L{StanzaRouter}.
    """

    def __init__(
        self,
        authority: CertificateAuthority | None = None,
        aliceConfig: dict[str, object] | None = None,
        bobConfig: dict[str, object] | None = None,
        aliceJID: str = "alice.example",
        bobJID: str = "bob.example",
        metrics: Any = None,
    ) -> None:
        """
        @param metrics: the L{xmppcomp.metrics.Metrics} both handlers count
            in (both ends in one process), or C{None}.
        """
        self.authority = authority or makeCertificateAuthority()
        self.clock = Clock()
        self.router = StanzaRouter(self.clock)
        self.aliceJID = JID(aliceJID)
        self.bobJID = JID(bobJID)
        self.alice = XTLSHandler(
            self._config(self.aliceJID, aliceConfig or {}), clock=self.clock, metrics=metrics
        )
        self.bob = XTLSHandler(
            self._config(self.bobJID, bobConfig or {}), clock=self.clock, metrics=metrics
        )
        self.aliceEnd = attachHandler(self.router, self.aliceJID.host, self.alice, self.clock)
        self.bobEnd = attachHandler(self.router, self.bobJID.host, self.bob, self.clock)

    def _config(self, who: JID, overrides: dict[str, object]) -> XTLSConfiguration:
        settings: dict[str, object] = {"trust": [self.authority.certificate]}
        if "certificate" not in overrides:
            if who.user is None:
                settings["certificate"] = self.authority.issue(dnsNames=[who.host], client=True)
            else:
                settings["certificate"] = self.authority.issue(
                    xmppAddrs=[who.userhost()], client=True
                )
        settings.update(overrides)
        return XTLSConfiguration(**settings)  # type: ignore[arg-type]


@implementer(ITunnelObserver)
class Recorder:
    """
    An L{xmppcomp.xtls.ITunnelObserver} that records the events.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, object, object]] = []

    def tunnelOpened(self, tunnel: object) -> None:
        self.events.append(("opened", tunnel, None))

    def tunnelClosed(self, tunnel: object, reason: Exception | None) -> None:
        self.events.append(("closed", tunnel, reason))
