# -*- test-case-name: tests.test_xtls_replies -*-
"""
Replies to IQ requests that came through an XTLS tunnel go back through
that tunnel (issue 22): two real L{Component}s on a L{MemoryRouter}, one
with its disco handlers and an XTLS endpoint, the other a peer that asks
through a tunnel; what the peer receives in the clear is what the XMPP
server carried, and it must be XTLS traffic only.
"""

from __future__ import annotations

import os
import ssl
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.logger import LogEvent, LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from twisted.words.protocols.jabber.xmlstream import toResponse
from twisted.words.xish import domish
import xmppcomp._wokkelcompat  # noqa: F401  (before any wokkel module)
from wokkel.disco import NS_DISCO_INFO
from wokkel.subprotocols import IQHandlerMixin, StreamManager, XMPPHandler
from zope.interface import implementer

from tests.xtlshelpers import StdlibPeer
from xmppcomp.component import Component
from xmppcomp.disco import discoHandlers
from xmppcomp.ns import NS_XTLS
from xmppcomp.httpauth import ConfirmationResponder, IncomingConfirmation
from xmppcomp.httpauth._protocol import ConfirmRequest
from xmppcomp.interfaces import IStanzaFilters
from xmppcomp.testing import MemoryRouter, StanzaRouter, makeCertificateAuthority
from xmppcomp.xtls import Tunnel, XTLSConfiguration, XTLSHandler

COMP = JID("comp.example.net")
PEER = JID("peer.example.net")
NS_HELD = "urn:example:held"


def captureLogs(case: SynchronousTestCase) -> list[LogEvent]:
    """
    The log events emitted until the end of the test.
    """
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    case.addCleanup(globalLogPublisher.removeObserver, events.append)
    return events


def logged(events: list[LogEvent], level: LogLevel | None = None) -> list[str]:
    return [
        formatEvent(e) for e in events
        if e.get("log_namespace", "").startswith("xmppcomp") and (level is None or e.get("log_level") == level)
    ]


class Held(XMPPHandler, IQHandlerMixin):
    """
    A wokkel C{IQHandlerMixin} handler: a get of C{urn:example:held}
    waits for the test (C{waiting}, fired with the result's child or
    C{None}); a set is refused C{not-allowed}. C{asked} records the ids
    the senders gave (C{xtlsId} for a tunnelled request), C{dispatched}
    the ids the handler saw.
    """

    iqHandlers = {
        f"/iq[@type='get']/query[@xmlns='{NS_HELD}']": "onGet",
        f"/iq[@type='set']/query[@xmlns='{NS_HELD}']": "onSet",
    }

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[Deferred[domish.Element | None]] = []
        self.asked: list[str] = []
        self.dispatched: list[str] = []

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver(f"/iq/query[@xmlns='{NS_HELD}']", self.handleRequest)

    def onGet(self, iq: domish.Element) -> Deferred[domish.Element | None]:
        self.asked.append(iq.xtlsId if getattr(iq, "xtlsEncrypted", False) else iq["id"])
        self.dispatched.append(iq["id"])
        d: Deferred[domish.Element | None] = Deferred()
        self.waiting.append(d)
        return d

    def onSet(self, iq: domish.Element) -> None:
        self.asked.append(iq.xtlsId if getattr(iq, "xtlsEncrypted", False) else iq["id"])
        self.dispatched.append(iq["id"])
        raise StanzaError("not-allowed", text="not here")


class Watch(XMPPHandler):
    """
    Records every stanza its component's stream dispatches, before any
    other observer: those that came through a tunnel (C{tunnelled}) and
    those the server carried in the clear (C{clear}, as XML text).
    """

    def __init__(self) -> None:
        super().__init__()
        self.clear: list[str] = []
        self.tunnelled: list[domish.Element] = []

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/*", self._seen, 1000)

    def _seen(self, stanza: domish.Element) -> None:
        if getattr(stanza, "xtlsEncrypted", False):
            self.tunnelled.append(stanza)
        else:
            self.clear.append(stanza.toXml())

    def clearOtherThanXTLS(self) -> list[str]:
        """
        What came in the clear and is not XTLS: neither an IQ with an
        C{urn:xmpp:tmp:xtls} child nor an empty IQ result (the
        acknowledgement of a data IQ).
        """
        return [text for text in self.clear if not _isXTLS(text)]


def _isXTLS(text: str) -> bool:
    parser = domish.elementStream()
    stanzas: list[domish.Element] = []
    parser.DocumentStartEvent = lambda root: None
    parser.ElementEvent = stanzas.append
    parser.DocumentEndEvent = lambda: None
    parser.parse(b"<stream xmlns='jabber:client'>" + text.encode("utf-8"))
    [stanza] = stanzas
    if stanza.name != "iq":
        return False
    children = list(stanza.elements())
    if not children:
        return stanza.getAttribute("type") == "result"
    return all(child.uri == NS_XTLS for child in children)


class Setup:
    """
    C{comp.example.net} (an XTLS endpoint, its disco handlers and any
    other handlers) and C{peer.example.net} (an XTLS endpoint and a
    L{Watch}), both real components on one L{MemoryRouter}.
    """

    def __init__(
        self,
        case: SynchronousTestCase,
        *handlers: Any,
        compConfig: dict[str, Any] | None = None,
        lateHandlers: Callable[[XTLSHandler], list[Any]] = lambda xtls: [],
    ) -> None:
        self.case = case
        self.router = MemoryRouter("example.net")
        self.authority = makeCertificateAuthority()
        self.compTLS = XTLSHandler(self._config(COMP, compConfig or {}), clock=self.router.reactor)
        self.peerTLS = XTLSHandler(self._config(PEER, {}), clock=self.router.reactor)
        self.watch = Watch()
        self.comp = self.component(
            COMP, self.compTLS, *discoHandlers({COMP.host: ()}), *handlers, *lateHandlers(self.compTLS)
        )
        self.peer = self.component(PEER, self.peerTLS, self.watch)

    def _config(self, who: JID, overrides: dict[str, Any]) -> XTLSConfiguration:
        settings: dict[str, Any] = {
            "certificate": self.authority.issue(dnsNames=[who.host], client=True),
            "trust": [self.authority.certificate],
        }
        settings.update(overrides)
        return XTLSConfiguration(**settings)

    def component(self, who: JID, *handlers: Any) -> Component:
        component = Component(
            "memory",
            self.router.domain,
            [who.host],
            secret=self.router.addIdentity(who.host),
            reactor=self.router.reactor,
            endpointFactory=self.router.endpointFactory,
            keepaliveInterval=None,
        )
        for handler in handlers:
            handler.setHandlerParent(component)
        component.startService()
        self.router.flush()

        def stop() -> None:
            stopped = component.stopService()
            self.router.flush()
            self.case.successResultOf(stopped)

        self.case.addCleanup(stop)
        self.case.assertTrue(component.isConnected(who.host))
        return component

    def flush(self) -> None:
        self.router.flush()
        self.router.reactor.advance(0)
        self.router.flush()

    def openTunnel(self) -> Tunnel:
        """
        The peer opens a tunnel to the component.
        """
        d = self.peerTLS.open(PEER, COMP)
        self.flush()
        return self.case.successResultOf(d)

    def ask(
        self, tunnel: Tunnel | None, identifier: str = "info1", kind: str = "get", child: str = NS_DISCO_INFO
    ) -> None:
        """
        The peer sends an IQ through C{tunnel}, or in the clear without
        one (as the XMPP server can, on its behalf).
        """
        iq = domish.Element((None, "iq"))
        iq["type"] = kind
        iq["id"] = identifier
        iq["to"] = COMP.full()
        iq["from"] = PEER.full()
        iq.addElement((child, "query"))
        if tunnel is None:
            self.peer.send(iq)
        else:
            tunnel.send(iq)
        self.flush()

    def tunnelledReplies(self) -> list[domish.Element]:
        """
        The IQ replies the peer decrypted from a tunnel.
        """
        return [
            s for s in self.watch.tunnelled
            if s.name == "iq" and s.getAttribute("type") in ("result", "error")
        ]


class DiscoThroughTunnelTests(SynchronousTestCase):
    """
    A disco#info request through a tunnel to a real L{Component} with its
    disco handlers.
    """

    def test_answeredInsideTheTunnel(self) -> None:
        """
        The result comes back through the tunnel, decrypted by the peer;
        in the clear the server carried XTLS IQs only.
        """
        setup = Setup(self)
        tunnel = setup.openTunnel()
        setup.ask(tunnel)
        self.assertEqual(setup.watch.clearOtherThanXTLS(), [])
        [answer] = [s for s in setup.watch.tunnelled if s.name == "iq"]
        self.assertEqual(
            (answer["type"], answer["id"], answer["from"], answer["to"]),
            ("result", "info1", COMP.full(), PEER.full()),
        )
        self.assertEqual([q.uri for q in answer.elements()], [NS_DISCO_INFO])

        self.assertEqual(setup.compTLS._pending, {})


def _condition(reply: domish.Element) -> str:
    [errorElement] = [child for child in reply.elements() if child.name == "error"]
    return next(errorElement.elements()).name


class IQHandlerTests(SynchronousTestCase):
    """
    A wokkel C{IQHandlerMixin} handler's results and stanza errors to
    tunnelled requests, however late, go through the tunnel.
    """

    def test_resultAndError(self) -> None:
        """
        A result given later and a stanza error raised at once both come
        back through the tunnel, nothing but XTLS in the clear.
        """
        held = Held()
        setup = Setup(self, held)
        tunnel = setup.openTunnel()
        setup.ask(tunnel, "late", child=NS_HELD)
        setup.ask(tunnel, "refused", kind="set", child=NS_HELD)
        self.assertEqual(held.asked, ["late", "refused"])
        # Dispatched with private ids, never sent out.
        self.assertEqual(len(set(held.dispatched)), 2)
        self.assertTrue(all(i.startswith("xtls-private-") and len(i) > 30 for i in held.dispatched))
        answer = domish.Element((NS_HELD, "query"))
        answer.addElement("secret", content="SECRET-MARKER")
        held.waiting[0].callback(answer)
        setup.flush()
        self.assertEqual(setup.watch.clearOtherThanXTLS(), [])
        self.assertFalse(any("SECRET-MARKER" in text for text in setup.watch.clear))
        refused, late = setup.tunnelledReplies()
        self.assertEqual((refused["type"], refused["id"], _condition(refused)), ("error", "refused", "not-allowed"))
        self.assertEqual((late["type"], late["id"]), ("result", "late"))
        self.assertEqual(str(late.query.secret), "SECRET-MARKER")
        self.assertEqual(setup.compTLS._pending, {})
        self.assertFalse(any(i in text for i in held.dispatched for text in setup.watch.clear))

    def test_noId(self) -> None:
        """
        The reply to a tunnelled request without an id has none either
        (C{xtlsId} is C{None}).
        """
        seen: list[domish.Element] = []
        held = Held()
        setup = Setup(self, held)
        setup.comp.xmlstream.addObserver(f"/iq/query[@xmlns='{NS_HELD}']", seen.append, 10)
        tunnel = setup.openTunnel()
        iq = domish.Element((None, "iq"))
        iq["type"], iq["to"], iq["from"] = "set", COMP.full(), PEER.full()
        iq.addElement((NS_HELD, "query"))
        tunnel.send(iq)
        setup.flush()
        [request] = seen
        self.assertIsNone(request.xtlsId)
        [refusal] = setup.tunnelledReplies()
        self.assertEqual((refusal.getAttribute("id"), _condition(refusal)), (None, "not-allowed"))
        self.assertEqual(setup.watch.clearOtherThanXTLS(), [])

    def test_handMadeReplies(self) -> None:
        """
        A reply a handler makes itself with the private id goes through
        the tunnel even without C{from} and C{to} (the receiver fills them
        in); one with the private id addressed to another JID is dropped
        and logged, never sent in the clear: what answers a private id
        never leaves but through its tunnel.
        """
        events = captureLogs(self)
        held = Held()
        setup = Setup(self, held)
        tunnel = setup.openTunnel()
        setup.ask(tunnel, "a1", child=NS_HELD)
        setup.ask(tunnel, "a2", child=NS_HELD)
        first, second = held.dispatched
        bare = domish.Element((None, "iq"))
        bare["type"], bare["id"] = "result", first
        bare.addChild(secretAnswer("SECRET-ONE"))
        setup.comp.send(bare)
        stray = domish.Element((None, "iq"))
        stray["type"], stray["id"], stray["to"] = "result", second, "someone@else.example/r"
        stray.addChild(secretAnswer("SECRET-TWO"))
        setup.comp.send(stray)
        setup.flush()
        [reply] = setup.tunnelledReplies()
        self.assertEqual((reply["id"], str(reply.query.secret)), ("a1", "SECRET-ONE"))
        self.assertFalse(any("SECRET-" in text for text in setup.watch.clear))
        self.assertEqual(
            len([line for line in logged(events) if "addressed to another JID than the request came from" in line]), 1
        )
        # The request answered, another reply to it (a handler's mistake)
        # is dropped too, even when no request waits any more.
        held.waiting[1].callback(None)
        setup.flush()
        self.assertEqual(setup.compTLS._pending, {})
        again = domish.Element((None, "iq"))
        again["type"], again["id"] = "result", first
        again.addChild(secretAnswer("SECRET-THREE"))
        setup.comp.send(again)
        setup.flush()
        self.assertFalse(any("SECRET-" in text for text in setup.watch.clear))
        self.assertEqual(len([line for line in logged(events) if "no request waits for it" in line]), 1)

    def test_clearRequestAnsweredInClear(self) -> None:
        """
        A request in the clear is answered in the clear, as before.
        """
        setup = Setup(self)
        setup.openTunnel()
        setup.ask(None, "plain")
        [answer] = setup.watch.clearOtherThanXTLS()
        self.assertIn("id='plain'", answer)
        self.assertIn(NS_DISCO_INFO, answer)

    def test_tunnelClosedBeforeReply(self) -> None:
        """
        A reply that comes after its tunnel closed is dropped and logged,
        not sent in the clear.
        """
        held = Held()
        setup = Setup(self, held)
        events = captureLogs(self)
        tunnel = setup.openTunnel()
        setup.ask(tunnel, "late", child=NS_HELD)
        closed = tunnel.close()
        setup.flush()
        self.successResultOf(closed)
        self.assertEqual(setup.compTLS.tunnels, [])
        answer = domish.Element((NS_HELD, "query"))
        answer.addElement("secret", content="SECRET-MARKER")
        held.waiting[0].callback(answer)
        setup.flush()
        self.assertEqual(setup.watch.clearOtherThanXTLS(), [])
        self.assertEqual(setup.tunnelledReplies(), [])
        [line] = [text for text in logged(events) if "dropped" in text]
        self.assertIn("peer.example.net", line)
        self.assertIn("closed before it", line)
        # Dropped once: the key is forgotten.
        self.assertEqual(dict(setup.compTLS._orphans), {})


class LimitTests(SynchronousTestCase):
    """
    C{maxPendingRequests}: requests through one tunnel waiting for their
    reply.
    """

    def test_resourceConstraint(self) -> None:
        """
        Beyond the limit, a request is answered C{resource-constraint}
        through the tunnel and the handlers never see it; once one is
        answered, there is room again.
        """
        held = Held()
        setup = Setup(self, held, compConfig={"maxPendingRequests": 2})
        tunnel = setup.openTunnel()
        for identifier in ("one", "two", "three"):
            setup.ask(tunnel, identifier, child=NS_HELD)
        self.assertEqual(held.asked, ["one", "two"])
        [refusal] = setup.tunnelledReplies()
        self.assertEqual((refusal["id"], _condition(refusal)), ("three", "resource-constraint"))
        held.waiting[0].callback(None)
        setup.flush()
        setup.ask(tunnel, "four", child=NS_HELD)
        self.assertEqual(held.asked, ["one", "two", "four"])
        self.assertEqual(setup.watch.clearOtherThanXTLS(), [])

    def test_duplicate(self) -> None:
        """
        Two requests through the tunnel with the same id are two requests
        (each has its private id): both are handed on and both answers
        come back through the tunnel with that id, as a reused id in the
        clear would be answered twice.
        """
        held = Held()
        setup = Setup(self, held)
        tunnel = setup.openTunnel()
        setup.ask(tunnel, "same", child=NS_HELD)
        setup.ask(tunnel, "same", child=NS_HELD)
        self.assertEqual(held.asked, ["same", "same"])
        for d in held.waiting:
            d.callback(None)
        setup.flush()
        self.assertEqual([(r["type"], r["id"]) for r in setup.tunnelledReplies()], [("result", "same")] * 2)
        self.assertEqual(setup.watch.clearOtherThanXTLS(), [])
        self.assertEqual(setup.compTLS._pending, {})

    def test_configuration(self) -> None:
        """
        The limit is 32 unless told, and positive (C{[xtls.limits]
        max_pending_requests}: L{tests.test_config}).
        """
        from xmppcomp.xtls import XTLSLimits

        self.assertEqual(XTLSConfiguration().maxPendingRequests, 32)
        self.assertEqual(XTLSLimits().maxPendingRequests, 32)
        self.assertRaises(ValueError, XTLSConfiguration, maxPendingRequests=0)


def secretAnswer(secret: str) -> domish.Element:
    """
    The query a L{Held} request is answered with, holding C{secret}.
    """
    answer = domish.Element((NS_HELD, "query"))
    answer.addElement("secret", content=secret)
    return answer


class ForgeryTests(SynchronousTestCase):
    """
    The XMPP server injects a request in the clear with the C{to},
    C{from} and C{id} of one that comes through a tunnel, hoping the real
    reply leaves in the clear: the tunnelled one is dispatched with a
    private id, so the two replies cannot be mixed up.
    """

    def askTwice(self, tunnelledFirst: bool) -> tuple[Setup, Tunnel, Deferred[Any], Deferred[Any]]:
        """
        Open a tunnel and ask a L{Held} handler twice with the id C{k1}:
        through the tunnel and in the clear, in that order if
        C{tunnelledFirst}.

        @return: the setup, the tunnel, and the handler's Deferreds of the
            tunnelled request and of the clear one.
        """
        held = Held()
        setup = Setup(self, held)
        tunnel = setup.openTunnel()
        for where in ((tunnel, None) if tunnelledFirst else (None, tunnel)):
            setup.ask(where, "k1", child=NS_HELD)
        self.assertEqual(held.asked, ["k1", "k1"])
        first, second = held.waiting
        return (setup, tunnel, first, second) if tunnelledFirst else (setup, tunnel, second, first)

    def assertForgedAnsweredInClear(self, setup: Setup) -> None:
        [clearReply] = setup.watch.clearOtherThanXTLS()
        self.assertIn("id='k1'", clearReply)
        self.assertIn("FORGED-ANSWER", clearReply)

    def assertRealThroughTunnel(self, setup: Setup) -> None:
        self.assertFalse(any("SECRET-MARKER" in text for text in setup.watch.clear))
        [reply] = setup.tunnelledReplies()
        self.assertEqual((reply["type"], reply["id"], str(reply.query.secret)), ("result", "k1", "SECRET-MARKER"))

    def test_forgedFirst(self) -> None:
        """
        A request in the clear with the peer's id arrives first and waits
        in a slow handler; then the peer's request with the same id comes
        through the tunnel. Whatever order the handler answers them in,
        the tunnelled reply goes through the tunnel with the peer's id and
        the clear one in the clear: nothing of the tunnelled reply in the
        clear.
        """
        setup, _, real, forged = self.askTwice(tunnelledFirst=False)
        forged.callback(secretAnswer("FORGED-ANSWER"))
        setup.flush()
        real.callback(secretAnswer("SECRET-MARKER"))
        setup.flush()
        self.assertForgedAnsweredInClear(setup)
        self.assertRealThroughTunnel(setup)

    def test_forgedAfter(self) -> None:
        """
        A request in the clear with the id of a tunnelled one still
        waiting is an ordinary request, answered in the clear; the
        tunnelled reply still goes through the tunnel.
        """
        setup, _, real, forged = self.askTwice(tunnelledFirst=True)
        forged.callback(secretAnswer("FORGED-ANSWER"))
        setup.flush()
        self.assertForgedAnsweredInClear(setup)
        self.assertEqual(setup.tunnelledReplies(), [])
        real.callback(secretAnswer("SECRET-MARKER"))
        setup.flush()
        self.assertForgedAnsweredInClear(setup)
        self.assertRealThroughTunnel(setup)

    def test_forgedAfterTunnelClosed(self) -> None:
        """
        So is one with the id of a request whose tunnel closed before its
        reply; that reply is dropped (logged), not sent in the clear.
        """
        events = captureLogs(self)
        held = Held()
        setup = Setup(self, held)
        tunnel = setup.openTunnel()
        setup.ask(tunnel, "k1", child=NS_HELD)
        tunnel.close()
        setup.flush()
        setup.ask(None, "k1", child=NS_HELD)
        self.assertEqual(held.asked, ["k1", "k1"])
        real, forged = held.waiting
        forged.callback(secretAnswer("FORGED-ANSWER"))
        real.callback(secretAnswer("SECRET-MARKER"))
        setup.flush()
        self.assertFalse(any("SECRET-MARKER" in text for text in setup.watch.clear))
        self.assertForgedAnsweredInClear(setup)
        self.assertEqual(len([text for text in logged(events) if "closed before it" in text]), 1)
        self.assertEqual(dict(setup.compTLS._orphans), {})


class ConfirmationResponderTests(SynchronousTestCase):
    """
    L{ConfirmationResponder} answers with L{Tunnel.send} itself: that
    clears the request's entry too.
    """

    def test_entriesCleared(self) -> None:
        """
        With room for one waiting request, confirmations through the
        tunnel one after the other are all answered through it.
        """
        asked: list[IncomingConfirmation] = []
        answers: list[Deferred[bool]] = []

        def policy(incoming: IncomingConfirmation) -> Deferred[bool]:
            asked.append(incoming)
            d: Deferred[bool] = Deferred()
            answers.append(d)
            return d

        setup = Setup(self, compConfig={"maxPendingRequests": 1}, lateHandlers=lambda xtls: [
            ConfirmationResponder(policy, xtls=xtls)
        ])
        tunnel = setup.openTunnel()
        for n in range(3):
            iq = domish.Element((None, "iq"))
            iq["type"] = "get"
            iq["id"] = f"c{n}"
            iq["to"] = COMP.full()
            iq["from"] = PEER.full()
            iq.addChild(ConfirmRequest(f"tx-{n}", "GET", "https://site.example/").toElement())
            tunnel.send(iq)
            setup.flush()
            self.assertEqual(len(asked), n + 1)
            self.assertTrue(asked[-1].tunnelled)
            answers[-1].callback(True)
            setup.flush()
        self.assertEqual(
            [(r["type"], r["id"]) for r in setup.tunnelledReplies()],
            [("result", "c0"), ("result", "c1"), ("result", "c2")],
        )
        self.assertEqual(setup.watch.clearOtherThanXTLS(), [])
        self.assertEqual(setup.compTLS._pending, {})


@implementer(IStanzaFilters)
class FilteringManager(StreamManager):
    """
    A wokkel C{StreamManager} with the send filters of
    L{IStanzaFilters} (receive filters accepted, never called): the
    standard-library peer's tests need a L{StanzaRouter}.
    """

    def __init__(self, factory: Any, reactor: Any = None) -> None:
        super().__init__(factory, reactor=reactor)
        self.sendFilters: list[Callable[[domish.Element], bool]] = []
        self.receiveFilters: list[Callable[[domish.Element], bool]] = []

    def send(self, obj: Any) -> None:
        if not isinstance(obj, str) and any(f(obj) for f in self.sendFilters):
            return
        super().send(obj)

    def addSendFilter(self, f: Callable[[domish.Element], bool]) -> None:
        self.sendFilters.append(f)

    def removeSendFilter(self, f: Callable[[domish.Element], bool]) -> None:
        self.sendFilters.remove(f)

    def addReceiveFilter(self, f: Callable[[domish.Element], bool]) -> None:
        self.receiveFilters.append(f)

    def removeReceiveFilter(self, f: Callable[[domish.Element], bool]) -> None:
        self.receiveFilters.remove(f)


class EagerPeer(StdlibPeer):
    """
    A L{StdlibPeer} client that sends C{eager} with its last handshake
    flight, in the same data IQ (TLS 1.3 allows it).
    """

    eager = b""

    def advance(self) -> None:
        if not self.handshakeDone and self.eager:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            else:
                self.handshakeDone = True
                self.tls.write(self.eager)
                self.eager = b""
        super().advance()


class FilteringManagerMixin:
    """
    A component's XTLS endpoint and disco handlers under a
    L{FilteringManager} on a L{StanzaRouter}, for L{StdlibPeer}s.
    """

    mktemp: Any

    def filteredEnd(
        self, manager: Callable[..., StreamManager] = FilteringManager, *handlers: Any
    ) -> tuple[StanzaRouter, Any, str, Any]:
        """
        The router, the authority, a directory for the peer's files and
        the component's end; C{handlers} join the XTLS endpoint and the
        disco handlers, under a parent C{manager} makes.
        """
        authority = makeCertificateAuthority()
        directory = self.mktemp()
        os.makedirs(directory)
        router = StanzaRouter()
        xtls = XTLSHandler(
            XTLSConfiguration(
                certificate=authority.issue(dnsNames=["comp.example"], client=True),
                trust=[authority.certificate],
            ),
            clock=router.reactor,
        )
        for handler in handlers:
            handler.xtls = xtls
        end = router.attach(
            "comp.example", xtls, None, *discoHandlers({"comp.example": ()}), *handlers, manager=manager
        )
        return router, authority, directory, end


class StdlibPeerTests(FilteringManagerMixin, SynchronousTestCase):
    """
    A peer whose TLS is the standard library's asks through the tunnel.
    """

    def test_discoThroughTunnel(self) -> None:
        """
        Its disco#info request is answered through the tunnel: the peer
        decrypts the result, the component sent only XTLS IQs in the
        clear. An inner request with the id of the data IQ carrying it is
        answered through the tunnel too (its private id sets it apart), and
        the data IQ's acknowledgement goes in the clear.
        """
        router, authority, directory, end = self.filteredEnd()
        peer = StdlibPeer(router, authority, "std.example", server=False, directory=directory)
        peer.start("comp.example")
        router.flush()
        self.assertTrue(peer.handshakeDone)
        peer.write(f"<iq type='get' id='d1' to='comp.example'><query xmlns='{NS_DISCO_INFO}'/></iq>".encode())
        router.flush()
        [result] = [s for s in peer.stanzas if s.get("id") == "d1"]
        self.assertEqual(result.get("type"), "result")
        self.assertEqual(result[0].tag, f"{{{NS_DISCO_INFO}}}query")
        self.assertFalse(any(NS_DISCO_INFO in text for text in end.sent))

        sentBefore = len(end.sent)
        nextData = f"std{peer.serial + 1}"
        peer.write(f"<iq type='get' id='{nextData}' to='comp.example'><query xmlns='{NS_DISCO_INFO}'/></iq>".encode())
        router.flush()
        [inner] = [s for s in peer.stanzas if s.get("id") == nextData]
        self.assertEqual(inner.get("type"), "result")
        self.assertEqual(inner[0].tag, f"{{{NS_DISCO_INFO}}}query")
        self.assertFalse(any(NS_DISCO_INFO in text for text in end.sent))
        acks = [text for text in end.sent[sentBefore:] if f"id='{nextData}'" in text]
        self.assertEqual(len(acks), 1)
        self.assertIn("type='result'", acks[0])
        self.assertNotIn(NS_DISCO_INFO, acks[0])


class EarlyDataTests(FilteringManagerMixin, SynchronousTestCase):
    """
    A request that arrives with the peer's last handshake flight, before
    the tunnel is open at this end.
    """

    def test_replyHeldUntilOpen(self) -> None:
        """
        Its reply waits for the tunnel to open, then goes through it.
        """
        router, authority, directory, end = self.filteredEnd()
        peer = EagerPeer(router, authority, "std.example", server=False, directory=directory)
        peer.eager = f"<iq type='get' id='early' to='comp.example'><query xmlns='{NS_DISCO_INFO}'/></iq>".encode()
        peer.start("comp.example")
        router.flush()
        self.assertTrue(peer.handshakeDone)
        self.assertEqual(peer.eager, b"")
        [result] = [s for s in peer.stanzas if s.get("id") == "early"]
        self.assertEqual(result.get("type"), "result")
        self.assertFalse(any(NS_DISCO_INFO in text for text in end.sent))


class Echo(XMPPHandler):
    """
    Answers each C{urn:example:echo} request with its result, and each
    message with a message, through C{xtls.reply}.
    """

    xtls: XTLSHandler

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/iq[@type='get']/query[@xmlns='urn:example:echo']", self.onEcho)
        self.xmlstream.addObserver("/message", self.onMessage)

    def onEcho(self, iq: domish.Element) -> None:
        iq.handled = True
        self.ids.append(iq["id"])
        self.xtls.reply(iq, toResponse(iq, "result"))

    def onMessage(self, message: domish.Element) -> None:
        answer = domish.Element((None, "message"))
        answer.addElement("body", content="echo: " + str(message.body))
        self.xtls.reply(message, answer)


class ReplyMethodTests(FilteringManagerMixin, SynchronousTestCase):
    """
    L{XTLSHandler.reply}: a reply through the tunnel its request came
    through, under any parent, for IQs and other stanzas.
    """

    def test_plainParent(self) -> None:
        """
        Under a plain wokkel C{StreamManager}, an IQ result and a message
        sent with C{reply} reach the peer inside the tunnel; nothing but
        XTLS IQs goes in the clear. The request keeps its id (no private
        ids there).
        """
        echo = Echo()
        router, authority, directory, end = self.filteredEnd(StreamManager, echo)
        peer = StdlibPeer(router, authority, "std.example", server=False, directory=directory)
        peer.start("comp.example")
        router.flush()
        peer.write(b"<iq type='get' id='e1' to='comp.example'><query xmlns='urn:example:echo'/></iq>")
        peer.write(b"<message to='comp.example'><body>hi</body></message>")
        router.flush()
        [result] = [s for s in peer.stanzas if s.get("id") == "e1"]
        self.assertEqual(result.get("type"), "result")
        self.assertEqual(echo.ids, ["e1"])
        [message] = [s for s in peer.stanzas if s.tag.endswith("message")]
        self.assertEqual([child.text for child in message], ["echo: hi"])
        self.assertFalse(any("urn:example:echo" in text or "echo: hi" in text for text in end.sent))

    def test_tunnelGone(self) -> None:
        """
        A reply to a request whose tunnel is gone is dropped and logged,
        not sent in the clear.
        """
        events = captureLogs(self)
        echo = Echo()
        router, authority, directory, end = self.filteredEnd(StreamManager, echo)
        peer = StdlibPeer(router, authority, "std.example", server=False, directory=directory)
        peer.start("comp.example")
        router.flush()
        [tunnel] = echo.xtls.tunnels
        request = domish.Element((None, "iq"))
        request["type"] = "get"
        request["id"] = "late"
        # As the endpoint stamps what comes through a tunnel.
        request["from"], request["to"] = tunnel.peer.full(), tunnel.local.full()
        request.xtlsEncrypted, request.xtlsLocal, request.xtlsPeer = True, tunnel.local, tunnel.peer
        tunnel.close()
        router.flush()
        sentBefore = len(end.sent)
        echo.xtls.reply(request, toResponse(request, "result"))
        router.flush()
        self.assertEqual(end.sent[sentBefore:], [])
        self.assertTrue(any("dropped, not sent in the clear: the tunnel is gone" in line for line in logged(events)))


class PlainParentTests(SynchronousTestCase):
    """
    A parent without L{IStanzaFilters}: a wokkel C{StreamManager}.
    """

    def test_warning(self) -> None:
        """
        The handler warns once, when it gets the parent, that replies to
        tunnelled requests will go in the clear, and names the fixes; they
        do, as before.
        """
        events = captureLogs(self)
        router = StanzaRouter()
        xtls = XTLSHandler(XTLSConfiguration(), clock=router.reactor)
        router.attach("comp.example", xtls)
        [warning] = logged(events, LogLevel.warn)
        self.assertIn("in the clear", warning)
        self.assertIn("xmppcomp.Component", warning)
        self.assertIn("xtls.reply(request, reply)", warning)

    def test_noWarningWithComponent(self) -> None:
        """
        A L{Component} offers the seam: no warning.
        """
        events = captureLogs(self)
        Setup(self)
        self.assertEqual([w for w in logged(events, LogLevel.warn) if "XTLS endpoint" in w], [])

    def test_disownRemovesFilters(self) -> None:
        """
        Leaving a component removes the handler's filters.
        """
        setup = Setup(self)
        setup.compTLS.disownHandlerParent(setup.comp)
        self.assertRaises(ValueError, setup.comp.removeSendFilter, setup.compTLS._filterSend)
        setup.compTLS.setHandlerParent(setup.comp)
