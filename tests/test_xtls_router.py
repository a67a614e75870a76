# -*- test-case-name: tests.test_xtls_router -*-
"""
XTLS end to end through the real router: two L{Component}s, C{alpha} and
C{beta}, connect over loopback TCP to a L{RouterService} with STARTTLS and
SCRAM, and each hosts an L{XTLSHandler} with its own certificate from a
test authority both trust. Alpha opens a tunnel to beta; stanzas of 10
bytes to 1 MiB cross it both ways, split into data IQs that the router
routes like any other stanza; certificates that do not match or come from
an authority nobody trusts fail the handshake at both ends.

Limits, and why they are what they are here:

  - The inner stanza limit (L{XTLSConfiguration.maxStanzaSize}, 256 KiB by
    default) applies to the stanzas I{inside} the tunnel, after
    decryption: it must allow the 1 MiB message, so both handlers get
    L{INNER_LIMIT} (2 MiB).
  - The router's limit (L{RouterLimits.maxStanzaSize}, 256 KiB by default)
    and the components' own stream limit (256 KiB) apply only to the
    carrying IQs: with C{chunkSize} 32 KiB of TLS bytes per data IQ (the
    default), each is about 44 KB of base64 plus the envelope, so the
    defaults stay, and the 1 MiB transfer under a 256 KiB router limit
    shows that the router never sees the inner stanza whole.
  - The router's rate limit (L{RouterLimits.maxStanzasPerSecond}, 5000 by
    default, per session, counted in one-second buckets, the stream closed
    with C{policy-violation} beyond): 1 MiB of plaintext is 65 TLS records,
    carried by about 33 data IQs of at most 32 KiB of TLS bytes, each
    answered by a result IQ from the other session. A session that sends
    and receives at C{r} MiB/s thus sends about C{66 r} stanzas a second
    (test_exchange counts them): 5000 allows about 75 MiB/s each way, or
    150 MiB/s one way, shared by every tunnel and every other stanza of
    that component. One 1 MiB transfer cannot reach the limit in a
    one-second bucket; sustained transfers can: C{bench/xtls_router.py}
    measures 31–38 MB/s one way (about 1,000 stanzas/s per session) with
    router and both components sharing one process, and separate
    processes go faster. Going over ends the whole session, every hostname
    and tunnel of the component with it, so a deployment whose components
    carry XTLS bulk traffic raises the limit, as L{ROUTER_LIMITS} does
    here (20000 stanzas a second).
"""

from __future__ import annotations

import os
import random
import string
from collections import Counter
from typing import Any, Optional

from twisted.internet import defer
from twisted.internet import reactor as _globalReactor
from twisted.internet.interfaces import IReactorTime
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber import error
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from wokkel.subprotocols import XMPPHandler
from zope.interface import implementer

from tests.routerhelpers import routerConfig
from xmppcomp.component import Component
from xmppcomp.config import RouterLimits
from xmppcomp.disco import discoHandlers
from xmppcomp.ns import NS_DISCO_INFO, NS_XTLS
from xmppcomp.router.service import RouterService
from xmppcomp.stream import tls
from xmppcomp.testing import CertificateAuthority, makeCertificateAuthority
from xmppcomp.xtls import (
    HandshakeFailed,
    ITunnelObserver,
    Tunnel,
    XTLSConfiguration,
    XTLSHandler,
    xmppAddresses,
)
from xmppcomp.xtls._wire import parseRequest

reactor: Any = _globalReactor

DOMAIN = "example.net"
ALPHA = "alpha.example.net"
BETA = "beta.example.net"
SECRETS = {ALPHA: "alpha's long secret", BETA: "beta's long secret"}

#: The inner stanza limit of both handlers: the 1 MiB message, with room.
INNER_LIMIT = 2 * 1024 * 1024

#: The router's limits: the defaults, except the stanza rate (see the
#: module docstring).
ROUTER_LIMITS = RouterLimits(maxStanzasPerSecond=20000)

#: Bounded waits (seconds) for events that take milliseconds here.
WAIT = 20.0

_DATA_IQ = f"/iq[@type='set']/data[@xmlns='{NS_XTLS}']"


def within(d: defer.Deferred[Any], seconds: float = WAIT) -> defer.Deferred[Any]:
    """
    C{d}, failing with L{defer.TimeoutError} if it has not fired after
    C{seconds}.
    """
    return d.addTimeout(seconds, reactor)


def text(size: int, seed: int) -> str:
    """
    C{size} characters, varied (so that a lost or swapped record shows),
    the same for the same C{seed}.
    """
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits
    block = "".join(rng.choice(alphabet) for _ in range(4096))
    return (block * (size // len(block) + 1))[:size]


def message(body: str) -> domish.Element:
    """
    A message without C{to} or C{from}: the receiver fills them in.
    """
    stanza = domish.Element((None, "message"))
    stanza.addElement("body", content=body)
    return stanza


@implementer(ITunnelObserver)
class TunnelEvents:
    """
    An L{ITunnelObserver} that records the events and lets a test wait for
    the next one of a kind.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, Tunnel, Optional[Exception]]] = []
        self._waiters: dict[str, list[defer.Deferred[tuple[Tunnel, Optional[Exception]]]]] = {}

    def _record(self, kind: str, tunnel: Tunnel, reason: Optional[Exception]) -> None:
        self.events.append((kind, tunnel, reason))
        for d in self._waiters.pop(kind, []):
            d.callback((tunnel, reason))

    def tunnelOpened(self, tunnel: Tunnel) -> None:
        self._record("opened", tunnel, None)

    def tunnelClosed(self, tunnel: Tunnel, reason: Optional[Exception]) -> None:
        self._record("closed", tunnel, reason)

    def next(self, kind: str) -> defer.Deferred[tuple[Tunnel, Optional[Exception]]]:
        """
        The first event of C{kind}: at once if there was one, else the
        next one.
        """
        for seen, tunnel, reason in self.events:
            if seen == kind:
                return defer.succeed((tunnel, reason))
        d: defer.Deferred[tuple[Tunnel, Optional[Exception]]] = defer.Deferred()
        self._waiters.setdefault(kind, []).append(d)
        return d


class Inbox(XMPPHandler):
    """
    Collects the messages a component receives, and counts the XTLS data
    IQs; L{waitFor} fires once C{n} messages are in.
    """

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[domish.Element] = []
        self.dataIQs: list[domish.Element] = []
        self._waiters: list[tuple[int, defer.Deferred[list[domish.Element]]]] = []

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/message", self._onMessage)
        self.xmlstream.addObserver(_DATA_IQ, self.dataIQs.append, 10)

    def _onMessage(self, stanza: domish.Element) -> None:
        self.messages.append(stanza)
        for entry in list(self._waiters):
            if len(self.messages) >= entry[0]:
                self._waiters.remove(entry)
                entry[1].callback(self.messages[: entry[0]])

    def waitFor(self, n: int) -> defer.Deferred[list[domish.Element]]:
        """
        The first C{n} messages, once they are in.
        """
        if len(self.messages) >= n:
            return defer.succeed(self.messages[:n])
        d: defer.Deferred[list[domish.Element]] = defer.Deferred()
        self._waiters.append((n, d))
        return d


class Member:
    """
    One component of the L{Deployment}, with its XTLS handler, disco,
    an L{Inbox} and L{TunnelEvents}.
    """

    def __init__(
        self, component: Component, xtls: XTLSHandler, inbox: Inbox, events: TunnelEvents
    ) -> None:
        self.component = component
        self.xtls = xtls
        self.inbox = inbox
        self.events = events
        self.jid = JID(component.hostnames[0])


class Deployment:
    """
    A router on loopback and two components, alpha and beta, that log in
    with STARTTLS and SCRAM and host XTLS handlers; also used by
    C{bench/xtls_router.py}.

    @ivar authority: the test CA: it issued the router's certificate, and
        (unless overridden) the components' XTLS certificates; the
        components trust it for both.
    """

    def __init__(
        self,
        directory: str,
        authority: CertificateAuthority | None = None,
        limits: RouterLimits = ROUTER_LIMITS,
        clock: IReactorTime | None = None,
    ) -> None:
        self.directory = directory
        self.authority = authority or makeCertificateAuthority()
        self.limits = limits
        self.reactor = clock or reactor
        self.router: RouterService | None = None
        self.members: list[Member] = []
        #: How many stanzas each session (by identity) sent the router.
        self.routed: Counter[str] = Counter()

    def startRouter(self) -> RouterService:
        self.router = RouterService(
            routerConfig(
                self.directory,
                DOMAIN,
                self.authority.issue(dnsNames=[DOMAIN]),
                SECRETS,
                authorization={identity: (identity,) for identity in SECRETS},
                limits=self.limits,
            ),
            self.reactor,
        )
        self.router.startService()
        self._countRouted()
        return self.router

    def _countRouted(self) -> None:
        """
        Count, in L{routed}, the stanzas each session hands the router
        (what its per-session rate limit counts).
        """
        assert self.router is not None and self.router.router is not None
        router = self.router.router
        route = router.route

        def counting(session: Any, stanza: domish.Element) -> None:
            self.routed[session.identity] += 1
            route(session, stanza)

        router.route = counting  # type: ignore[method-assign]

    def xtlsConfiguration(self, hostname: str, **overrides: Any) -> XTLSConfiguration:
        """
        The XTLS configuration of C{hostname}: a certificate for it (DNS-ID)
        from the test CA, that CA trusted, and the inner limit that allows
        1 MiB stanzas; C{overrides} replace any of them.
        """
        settings: dict[str, Any] = {
            "certificate": self.authority.issue(dnsNames=[hostname], client=True),
            "trust": [self.authority.certificate],
            "maxStanzaSize": INNER_LIMIT,
        }
        settings.update(overrides)
        return XTLSConfiguration(**settings)

    def addComponent(self, hostname: str, **xtlsOverrides: Any) -> Member:
        """
        Start a component for C{hostname} with an XTLS handler, disco and an
        L{Inbox}.
        """
        assert self.router is not None
        port = self.router.ports[0].getHost().port
        component = Component(
            "tcp:host=127.0.0.1:port=%d" % (port,),
            DOMAIN,
            [hostname],
            secret=SECRETS[hostname],
            identity=hostname,
            trust=tls.CATrust([self.authority.certificate.original.to_cryptography()]),
            reactor=self.reactor,
            retryPolicy=lambda attempt: 0.05,
        )
        xtls = XTLSHandler(self.xtlsConfiguration(hostname, **xtlsOverrides), clock=self.reactor)
        xtls.setHandlerParent(component)
        for handler in discoHandlers({hostname: []}):
            handler.setHandlerParent(component)
        inbox = Inbox()
        inbox.setHandlerParent(component)
        events = TunnelEvents()
        xtls.addObserver(events)
        component.startService()
        member = Member(component, xtls, inbox, events)
        self.members.append(member)
        return member

    async def start(
        self, alpha: dict[str, Any] | None = None, beta: dict[str, Any] | None = None
    ) -> tuple[Member, Member]:
        """
        Start the router, then alpha and beta (with these XTLS overrides),
        and wait until both are bound.
        """
        self.startRouter()
        first = self.addComponent(ALPHA, **(alpha or {}))
        second = self.addComponent(BETA, **(beta or {}))
        await within(
            defer.gatherResults([first.component.whenReady(), second.component.whenReady()])
        )
        return first, second

    async def stop(self) -> None:
        """
        Stop the components, then the router.
        """
        for member in self.members:
            await member.component.stopService()
        if self.router is not None and self.router.running:
            await self.router.stopService()


class XTLSThroughRouterTests(TestCase):
    """
    XTLS between two components through the router over loopback TCP.
    """

    timeout = 60

    def setUp(self) -> None:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.deployment = Deployment(directory)
        self.addCleanup(lambda: defer.Deferred.fromCoroutine(self.deployment.stop()))

    async def openTunnel(self, alpha: Member, beta: Member) -> tuple[Tunnel, Tunnel]:
        """
        Alpha opens a tunnel to beta; both ends, once open at both.
        """
        aliceTunnel = await within(alpha.xtls.open(alpha.jid, beta.jid))
        betaTunnel, reason = await within(beta.events.next("opened"))
        return aliceTunnel, betaTunnel

    async def test_exchange(self) -> None:
        """
        Alpha opens a tunnel to beta through the router; each end verified
        the other's certificate (DNS-ID of its hostname); messages of 10
        bytes, 1 KiB, 100 KiB and 1 MiB cross it both ways intact and in
        order, marked C{xtlsEncrypted}, with C{to} and C{from} filled in
        from the carrying IQs; the 1 MiB ones cross the router's 256 KiB
        limit as dozens of small data IQs; closing releases both ends.
        """
        alpha, beta = await self.deployment.start()
        self.assertEqual(self.deployment.limits.maxStanzaSize, 256 * 1024)
        alphaTunnel, betaTunnel = await self.openTunnel(alpha, beta)
        self.assertTrue(alphaTunnel.isOpen and betaTunnel.isOpen)
        self.assertTrue(alphaTunnel.initiator)
        self.assertFalse(betaTunnel.initiator)
        self.assertEqual(betaTunnel.peer, JID(ALPHA))
        self.assertIn(alphaTunnel.protocolVersion(), ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(_dnsNames(alphaTunnel.peerCertificate()), [BETA])
        self.assertEqual(_dnsNames(betaTunnel.peerCertificate()), [ALPHA])
        self.assertEqual(xmppAddresses(alphaTunnel.peerCertificate()), frozenset())

        sizes = [10, 1024, 100 * 1024, 1024 * 1024]
        toBeta = [text(size, seed) for seed, size in enumerate(sizes)]
        toAlpha = [text(size, 100 + seed) for seed, size in enumerate(sizes)]
        dataBefore = len(beta.inbox.dataIQs)
        routedBefore = Counter(self.deployment.routed)
        for forBeta, forAlpha in zip(toBeta, toAlpha):
            alphaTunnel.send(message(forBeta))
            betaTunnel.send(message(forAlpha))
        atBeta, atAlpha = await within(
            defer.gatherResults(
                [beta.inbox.waitFor(len(sizes)), alpha.inbox.waitFor(len(sizes))]
            )
        )
        self.assertEqual([str(m.body) for m in atBeta], toBeta)
        self.assertEqual([str(m.body) for m in atAlpha], toAlpha)
        for received, sender, recipient in [(atBeta, ALPHA, BETA), (atAlpha, BETA, ALPHA)]:
            for m in received:
                self.assertTrue(getattr(m, "xtlsEncrypted", False))
                self.assertEqual((m["from"], m["to"]), (sender, recipient))
        await within(alphaTunnel.whenDrained())
        await within(betaTunnel.whenDrained())

        # 1.1 MiB went from alpha to beta in data IQs of at most chunkSize
        # (32 KiB by default) TLS bytes each, as base64 that needs no
        # escaping, each far under the router's limit.
        chunk = XTLSConfiguration().chunkSize
        self.assertEqual(chunk, 32 * 1024)
        carried = beta.inbox.dataIQs[dataBefore:]
        payloads = [len(parseRequest(iq).payload) for iq in carried]  # type: ignore[union-attr]
        self.assertLessEqual(max(payloads), chunk)
        self.assertGreaterEqual(sum(payloads), sum(sizes))
        self.assertGreaterEqual(len(carried), -(-sum(sizes) // chunk))
        self.assertLessEqual(len(carried), 50)
        self.assertLess(max(len(iq.toXml()) for iq in carried), chunk * 4 // 3 + 1024)
        # What the router's rate limit counts: each session sent one data
        # IQ per chunk and one result per chunk of the other way.
        routed = Counter(self.deployment.routed) - routedBefore
        self.assertEqual(routed, Counter({ALPHA: 2 * len(carried), BETA: 2 * len(carried)}))
        self.assertEqual(
            [kind for kind, _, _ in alpha.events.events + beta.events.events],
            ["opened", "opened"],
        )

        await within(alphaTunnel.close())
        alphaClosed, alphaReason = await within(alpha.events.next("closed"))
        betaClosed, betaReason = await within(beta.events.next("closed"))
        self.assertEqual((alphaClosed, alphaReason), (alphaTunnel, None))
        self.assertEqual((betaClosed, betaReason), (betaTunnel, None))
        self.assertFalse(alphaTunnel.isOpen or betaTunnel.isOpen)
        self.assertEqual((alpha.xtls.tunnels, beta.xtls.tunnels), ([], []))

    async def test_plaintextNotRouted(self) -> None:
        """
        The data IQs the router delivers do not contain the plaintext.
        """
        alpha, beta = await self.deployment.start()
        alphaTunnel, _ = await self.openTunnel(alpha, beta)
        alphaTunnel.send(message("SECRET-MARKER"))
        [received] = await within(beta.inbox.waitFor(1))
        self.assertEqual(str(received.body), "SECRET-MARKER")
        self.assertTrue(beta.inbox.dataIQs)
        for iq in beta.inbox.dataIQs:
            self.assertNotIn("SECRET-MARKER", iq.toXml())

    async def assertHandshakeFails(
        self, alpha: Member, beta: Member, failure: type[Exception]
    ) -> tuple[Exception, Exception]:
        """
        Alpha's open fails with C{failure}; both ends see their tunnel
        closed with an error, and neither keeps it.

        @return: the error of alpha's open and the reason beta saw.
        """
        opening = alpha.xtls.open(alpha.jid, beta.jid)
        try:
            await within(opening)
        except failure as e:
            alphaError: Exception = e
        else:
            self.fail(f"the open succeeded; expected {failure.__name__}")
        alphaClosed, alphaReason = await within(alpha.events.next("closed"))
        betaClosed, betaReason = await within(beta.events.next("closed"))
        self.assertIsNotNone(alphaReason)
        self.assertIsNotNone(betaReason)
        assert betaReason is not None
        self.assertFalse(alphaClosed.isOpen or betaClosed.isOpen)
        self.assertEqual([kind for kind, _, _ in alpha.events.events], ["closed"])
        self.assertEqual([kind for kind, _, _ in beta.events.events], ["closed"])
        self.assertEqual((alpha.xtls.tunnels, beta.xtls.tunnels), ([], []))
        return alphaError, betaReason

    async def test_serverNameMismatch(self) -> None:
        """
        Beta presents a certificate, from the trusted authority, for
        another name: alpha's open fails with L{HandshakeFailed} naming
        beta, and both ends see the tunnel closed with an error.
        """
        authority = self.deployment.authority
        alpha, beta = await self.deployment.start(
            beta={"certificate": authority.issue(dnsNames=["mallory.example.net"], client=True)}
        )
        alphaError, betaReason = await self.assertHandshakeFails(alpha, beta, HandshakeFailed)
        self.assertIn(BETA, str(alphaError))

    async def test_serverUntrustedAuthority(self) -> None:
        """
        Beta presents a certificate for its own name from an authority
        alpha does not trust: the handshake fails at both ends.
        """
        other = makeCertificateAuthority("another CA")
        alpha, beta = await self.deployment.start(
            beta={"certificate": other.issue(dnsNames=[BETA], client=True)}
        )
        alphaError, betaReason = await self.assertHandshakeFails(alpha, beta, HandshakeFailed)
        self.assertIn("untrusted", str(alphaError))

    async def test_clientNameMismatch(self) -> None:
        """
        Alpha, the TLS client, presents a certificate for another name:
        beta refuses it (C{not-acceptable} answering alpha's data IQ),
        alpha's open fails with that error, and both ends close.
        """
        authority = self.deployment.authority
        alpha, beta = await self.deployment.start(
            alpha={"certificate": authority.issue(dnsNames=["mallory.example.net"], client=True)}
        )
        alphaError, betaReason = await self.assertHandshakeFails(
            alpha, beta, error.StanzaError
        )
        assert isinstance(alphaError, error.StanzaError)
        self.assertEqual(alphaError.condition, "not-acceptable")
        self.assertIsInstance(betaReason, HandshakeFailed)
        self.assertIn(ALPHA, str(betaReason))

    async def test_discoInfo(self) -> None:
        """
        Disco#info on an XTLS-enabled hostname, asked through the router,
        lists C{urn:xmpp:tmp:xtls} next to the disco features.
        """
        alpha, beta = await self.deployment.start()
        iq = domish.Element((None, "iq"))
        iq["type"] = "get"
        iq["from"] = ALPHA
        iq["to"] = BETA
        iq.addElement((NS_DISCO_INFO, "query"))
        answer = await within(alpha.component.request(iq))
        self.assertEqual(answer["type"], "result")
        [query] = list(answer.elements(NS_DISCO_INFO, "query"))
        features = {f["var"] for f in query.elements(NS_DISCO_INFO, "feature")}
        self.assertIn(NS_XTLS, features)
        self.assertIn(NS_DISCO_INFO, features)
        identities = [(i["category"], i["type"]) for i in query.elements(NS_DISCO_INFO, "identity")]
        self.assertEqual(identities, [("component", "generic")])


def _dnsNames(certificate: Any) -> list[str]:
    """
    The DNS-IDs of an C{x509.Certificate}.
    """
    from cryptography import x509

    extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return list(extension.value.get_values_for_type(x509.DNSName))
