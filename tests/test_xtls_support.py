# -*- test-case-name: tests.test_xtls_e2e -*-
"""
Support for the XTLS tests (no tests here): a tiny in-memory router that
serialises every stanza, queues it, and delivers it parsed anew to the
entity whose domain is in its C{to}, so that the two ends share no element
objects and everything crosses as XML text.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable

from twisted.internet.task import Clock
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish, utility
from wokkel.subprotocols import StreamManager

from xmppcomp.testing import CertificateAuthority, makeCertificateAuthority
from xmppcomp.xtls import ITunnelObserver, XTLSConfiguration, XTLSHandler
from zope.interface import implementer


_TO = re.compile(r"\sto=(['\"])(.*?)\1")


class _NoFactory:
    """
    What L{StreamManager} needs from a factory: somewhere to put
    bootstraps, which never fire here.
    """

    def addBootstrap(self, event: str, observer: Callable[..., object]) -> None:
        pass


class RouterEnd(utility.EventDispatcher):
    """
    One entity's connection to the L{MemoryRouter}: an XML stream stand-in
    (C{send}, C{addObserver}, C{dispatch}).

    @ivar sent: every stanza this end sent, as XML text.
    """

    def __init__(self, router: MemoryRouter) -> None:
        super().__init__()
        self._router = router
        self.sent: list[str] = []
        self._stanzas: list[domish.Element] = []
        self._parser = domish.elementStream()
        self._parser.DocumentStartEvent = lambda root: None
        self._parser.ElementEvent = self._stanzas.append
        self._parser.DocumentEndEvent = lambda: None
        self._parser.parse(b"<stream xmlns='jabber:client'>")

    def send(self, obj: domish.Element | str) -> None:
        text = obj if isinstance(obj, str) else obj.toXml()
        self.sent.append(text)
        self._router.enqueue(text)

    def receive(self, text: str) -> None:
        self._parser.parse(text.encode("utf-8"))
        stanzas = list(self._stanzas)
        del self._stanzas[:]
        for stanza in stanzas:
            self.dispatch(stanza)


class MemoryRouter:
    """
    Route stanzas between L{RouterEnd}s by the domain of C{to}; nothing
    moves until L{pump} (or L{flush}).

    @ivar dropped: stanzas for a domain nobody has.
    @ivar delivered: how many stanzas were delivered.
    """

    def __init__(self) -> None:
        self._queue: deque[str] = deque()
        self._ends: dict[str, RouterEnd] = {}
        self._probe = domish.elementStream()
        self.dropped: list[str] = []
        self.delivered = 0
        self.bytes = 0

    def connect(self, domain: str) -> RouterEnd:
        end = RouterEnd(self)
        self._ends[domain] = end
        return end

    def enqueue(self, text: str) -> None:
        self._queue.append(text)

    def pump(self) -> bool:
        """
        Deliver one stanza.

        @return: whether there was one.
        """
        if not self._queue:
            return False
        text = self._queue.popleft()
        self.bytes += len(text)
        # The destination domain, from the serialised text.
        match = _TO.search(text[: text.index(">")])
        to = match.group(2) if match else None
        end = self._ends.get(JID(to).host) if to else None
        if end is None:
            self.dropped.append(text)
        else:
            self.delivered += 1
            end.receive(text)
        return True

    def flush(self, limit: int = 1_000_000) -> int:
        """
        Deliver until nothing is left.

        @return: how many stanzas were delivered.
        """
        count = 0
        while self.pump():
            count += 1
            if count > limit:
                raise AssertionError("the router never went quiet")
        return count


def attachHandler(
    router: MemoryRouter, domain: str, handler: XTLSHandler, clock: Clock
) -> RouterEnd:
    """
    Put C{handler} in a wokkel L{StreamManager} whose stream is a new end
    of C{router} for C{domain}, initialised.
    """
    end = router.connect(domain)
    manager = StreamManager(_NoFactory(), reactor=clock)
    handler.setHandlerParent(manager)
    manager._connected(end)
    manager._authd(end)
    return end


class Pair:
    """
    Two XTLS handlers, for C{alice.example} and C{bob.example}, with
    certificates from one authority, connected through a L{MemoryRouter}.
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
        self.router = MemoryRouter()
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
