# -*- test-case-name: tests.test_abuse_sasl -*-
"""
Abuse of SASL, hostname bind and routing on the receiving side: replayed
and forged SCRAM messages, bad encodings, bind storms, unbinding another
session's names, stanza floods, and the per-source limit on failed
authentications (L{xmppcomp.stream.receiving.AuthFailureLimiter}); each
gets its own error, and other sessions keep being served.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from xmppcomp.config import RouterLimits
from xmppcomp.ns import NS_COMPONENT_0, NS_SASL, NS_STREAMS, NS_TLS
from xmppcomp.router.service import Router
from xmppcomp.stream.acceptreceiving import AcceptFactory, AcceptPolicy
from xmppcomp.stream.receiving import (
    AuthFailureLimiter,
    ReceivingFactory,
    ReceivingPolicy,
    sourceKey,
)
from xmppcomp.stream.sasl import MemoryCredentialStore
from xmppcomp.stream.sasl.mechanisms import ScramInitiator
from xmppcomp.testing import FakeTLSTransport, PretendTLS

from .streamhelpers import PeerReader, header, read, streamErrorCondition

DOMAIN = "example.net"
IDENTITY = "comp.example.net"
OTHER = "other.example.net"
SECRET = "correct horse battery staple"
STORE = MemoryCredentialStore()
STORE.add(IDENTITY, SECRET)
STORE.add(OTHER, SECRET)


class Site:
    """
    A router with its XEP-0225 and XEP-0114 factories on one clock.
    """

    def __init__(self, limiter: AuthFailureLimiter | None = None, **limits: Any) -> None:
        self.clock = MemoryReactorClock()
        self.limiter = limiter if limiter is not None else AuthFailureLimiter(maxFailures=4, window=60)
        self.router = Router(
            DOMAIN,
            lambda identity, hostname: hostname == identity or hostname.endswith("." + identity),
            RouterLimits(**limits),
            reactor=self.clock,
        )
        self.receiving = ReceivingFactory(
            ReceivingPolicy(
                domains={DOMAIN},
                credentials=STORE,
                tlsOptions=PretendTLS(),
                features=self.router.receivingFeatures(),
                authFailures=self.limiter,
                maxAuthAttempts=limits.get("maxAuthAttempts", 3),
            ),
            reactor=self.clock,
        )
        self.router.addBootstraps(self.receiving, "xep0225")
        self.accept = AcceptFactory(
            AcceptPolicy(secrets={"legacy.example.net": "s3cret"}.get, authFailures=self.limiter),
            reactor=self.clock,
        )
        self.router.addBootstraps(self.accept, "xep0114")

    def connect(self, host: str = "192.0.2.1", kind: str = "xep0225") -> "Peer":
        factory = self.receiving if kind == "xep0225" else self.accept
        return Peer(self, factory, IPv4Address("TCP", host, 40000))


class Peer:
    """
    One connection to the L{Site}, as a component would drive it.
    """

    def __init__(self, site: Site, factory: Any, address: object) -> None:
        self.site = site
        self.xs = factory.buildProtocol(address)
        self.transport = FakeTLSTransport(peerAddress=address)
        self.xs.makeConnection(self.transport)
        self.reader = PeerReader()
        self.received = read(self.transport, self.reader)

    def send(self, data: bytes | str) -> list[domish.Element]:
        if isinstance(data, str):
            data = data.encode()
        if not self.transport.disconnecting:
            self.xs.dataReceived(data)
        elements = read(self.transport, self.reader)
        self.received += elements
        return elements

    @property
    def condition(self) -> str | None:
        for element in self.received:
            condition = streamErrorCondition(element)
            if condition is not None:
                return condition
        return None

    def startTLS(self) -> None:
        self.send(header())
        self.send("<starttls xmlns='%s'/>" % (NS_TLS,))
        self.send(header())

    def auth(self, mechanism: str, data: bytes | None) -> domish.Element:
        payload = "" if data is None else (base64.b64encode(data).decode() or "=")
        replies = self.send(
            "<auth xmlns='%s' mechanism='%s'>%s</auth>" % (NS_SASL, mechanism, payload)
        )
        return replies[0]

    def response(self, data: bytes | str) -> domish.Element:
        text = base64.b64encode(data).decode() if isinstance(data, bytes) else data
        (reply,) = self.send("<response xmlns='%s'>%s</response>" % (NS_SASL, text))
        return reply

    def scram(self, identity: str = IDENTITY, secret: str = SECRET) -> tuple[ScramInitiator, bytes, bytes]:
        """
        Run SCRAM-SHA-1 up to the server-first message.

        @return: the client, its client-first and the server-first.
        """
        client = ScramInitiator("SCRAM-SHA-1", identity, secret, None, False)
        first = client.getInitialResponse()
        challenge = self.auth("SCRAM-SHA-1", first)
        self.assertName(challenge, "challenge")
        return client, first, base64.b64decode(str(challenge))

    def login(self, identity: str = IDENTITY) -> None:
        self.startTLS()
        client, _, serverFirst = self.scram(identity)
        self.assertName(self.response(client.getResponse(serverFirst)), "success")
        self.send(header())

    def bind(self, hostname: str, action: str = "bind") -> domish.Element:
        (reply,) = self.send(
            "<iq type='set' id='%s'><%s xmlns='%s'><hostname>%s</hostname></%s></iq>"
            % (hostname, action, NS_COMPONENT_0, hostname, action)
        )
        return reply

    @staticmethod
    def assertName(element: domish.Element, name: str) -> None:
        if element.name != name:
            raise AssertionError("expected <%s/>, got %s" % (name, element.toXml()))


def failureCondition(element: domish.Element) -> str | None:
    if (element.uri, element.name) != (NS_SASL, "failure"):
        return None
    for child in element.elements():
        if child.name != "text":
            return str(child.name)
    return None


def stanzaErrorCondition(element: domish.Element) -> str | None:
    if element.getAttribute("type") != "error":
        return None
    for error in element.elements():
        if error.name != "error":
            continue
        for child in error.elements():
            if child.name != "text":
                return str(child.name)
    return None


class ScramAbuseTests(SynchronousTestCase):
    """
    Forged and replayed SCRAM messages fail with their own condition.
    """

    def test_replayedClientFinal(self) -> None:
        """
        A client-final message recorded on one stream does not
        authenticate another: its nonce is not the new server nonce.
        """
        site = Site()
        victim = site.connect()
        victim.startTLS()
        client, _, serverFirst = victim.scram()
        final = client.getResponse(serverFirst)
        self.assertEqual(victim.response(final).name, "success")

        attacker = site.connect("192.0.2.66")
        attacker.startTLS()
        attacker.scram()
        self.assertEqual(failureCondition(attacker.response(final)), "malformed-request")

    def test_replayedWholeExchange(self) -> None:
        """
        Replaying the recorded client-first and client-final fails: the
        server nonce differs on every exchange.
        """
        site = Site()
        victim = site.connect()
        victim.startTLS()
        client, first, serverFirst = victim.scram()
        final = client.getResponse(serverFirst)
        victim.response(final)

        attacker = site.connect("192.0.2.66")
        attacker.startTLS()
        challenge = attacker.auth("SCRAM-SHA-1", first)
        self.assertEqual(challenge.name, "challenge")
        self.assertNotEqual(base64.b64decode(str(challenge)), serverFirst)
        self.assertEqual(failureCondition(attacker.response(final)), "malformed-request")

    def test_wrongNonce(self) -> None:
        """
        A client-final whose nonce is not the combined nonce is refused.
        """
        site = Site()
        peer = site.connect()
        peer.startTLS()
        client, _, serverFirst = peer.scram()
        final = client.getResponse(serverFirst).decode()
        fields = dict(part.split("=", 1) for part in final.split(","))
        forged = final.replace("r=" + fields["r"], "r=" + fields["r"][:-4] + "AAAA")
        self.assertEqual(failureCondition(peer.response(forged.encode())), "malformed-request")

    def test_wrongProof(self) -> None:
        """
        A wrong proof is C{not-authorized}, the same as an unknown user.
        """
        site = Site()
        peer = site.connect()
        peer.startTLS()
        client, _, serverFirst = peer.scram(secret="wrong")
        self.assertEqual(failureCondition(peer.response(client.getResponse(serverFirst))), "not-authorized")
        client, _, serverFirst = peer.scram(identity="nobody.example.net")
        self.assertEqual(failureCondition(peer.response(client.getResponse(serverFirst))), "not-authorized")

    def test_truncatedBase64(self) -> None:
        """
        Truncated or invalid base64, in C{<auth/>} or C{<response/>}, is
        C{incorrect-encoding}.
        """
        site = Site(limiter=AuthFailureLimiter(maxFailures=100), maxAuthAttempts=10)
        peer = site.connect()
        peer.startTLS()
        encoded = base64.b64encode(b"n,,n=comp.example.net,r=abcdefgh").decode()
        for bad in (encoded[:-3], encoded + "=", "!!!!", "A"):
            (reply,) = peer.send("<auth xmlns='%s' mechanism='SCRAM-SHA-1'>%s</auth>" % (NS_SASL, bad))
            self.assertEqual(failureCondition(reply), "incorrect-encoding", bad)
        client, _, serverFirst = peer.scram()
        final = base64.b64encode(client.getResponse(serverFirst)).decode()
        self.assertEqual(failureCondition(peer.response(final[:-2])), "incorrect-encoding")

    def test_responseWithoutAuth(self) -> None:
        """
        A C{<response/>} with no exchange in progress is
        C{malformed-request}.
        """
        site = Site()
        peer = site.connect()
        peer.startTLS()
        self.assertEqual(failureCondition(peer.response(b"x")), "malformed-request")

    def test_tooManyAttempts(self) -> None:
        """
        The third failure on one stream closes it with
        C{policy-violation}.
        """
        site = Site(limiter=AuthFailureLimiter(maxFailures=100))
        peer = site.connect()
        peer.startTLS()
        for _ in range(3):
            peer.auth("PLAIN", b"\x00comp.example.net\x00wrong")
        self.assertEqual(peer.condition, "policy-violation")
        self.assertTrue(peer.transport.disconnecting or peer.xs._state.name == "CLOSING")

    def test_saslAfterSuccess(self) -> None:
        """
        SASL again on the restarted stream is refused with
        C{unsupported-stanza-type}: nobody re-authenticates a stream.
        """
        site = Site()
        peer = site.connect()
        peer.login()
        peer.auth("PLAIN", b"\x00comp.example.net\x00" + SECRET.encode())
        self.assertEqual(peer.condition, "unsupported-stanza-type")


class AuthFailureLimiterTests(SynchronousTestCase):
    """
    L{AuthFailureLimiter} counts failures per source in fixed windows,
    with bounded memory.
    """

    def test_blocksAfterMaxFailures(self) -> None:
        """
        A source is blocked once it failed C{maxFailures} times in a
        window, until the window ends; other sources are not.
        """
        limiter = AuthFailureLimiter(maxFailures=3, window=10)
        for t in (0, 1, 2):
            self.assertFalse(limiter.blocked("a", t))
            limiter.failed("a", t)
        self.assertTrue(limiter.blocked("a", 3))
        self.assertEqual(limiter.retryAfter("a", 3), 7)
        self.assertFalse(limiter.blocked("b", 3))
        self.assertFalse(limiter.blocked("a", 10))
        self.assertEqual(limiter.retryAfter("a", 10), 0)

    def test_unknownSourceNotLimited(self) -> None:
        """
        A source without a key (not IP) is never counted or blocked.
        """
        limiter = AuthFailureLimiter(maxFailures=1)
        limiter.failed(None, 0)
        self.assertFalse(limiter.blocked(None, 0))
        self.assertEqual(len(limiter), 0)

    def test_boundedMemory(self) -> None:
        """
        At most C{maxSources} sources are kept: expired ones go first, then
        the oldest.
        """
        limiter = AuthFailureLimiter(maxFailures=1, window=10, maxSources=100)
        for i in range(1000):
            limiter.failed("10.0.%d.%d" % (i // 256, i % 256), i / 1000)
        self.assertEqual(len(limiter), 100)
        self.assertTrue(limiter.blocked("10.0.3.231", 1))
        self.assertFalse(limiter.blocked("10.0.0.0", 1))
        limiter.failed("late", 20)
        self.assertEqual(len(limiter), 1)

    def test_validation(self) -> None:
        """
        Limits below one and a window that is not positive are refused.
        """
        for kwargs in ({"maxFailures": 0}, {"window": 0}, {"maxSources": 0}):
            self.assertRaises(ValueError, AuthFailureLimiter, **kwargs)

    def test_sourceKey(self) -> None:
        """
        The key is the IPv4 address, the IPv6 /64, or the IPv4 address of
        a mapped IPv6 address; other addresses have none.
        """
        self.assertEqual(sourceKey(IPv4Address("TCP", "192.0.2.1", 1)), "192.0.2.1")
        self.assertEqual(
            sourceKey(IPv6Address("TCP", "2001:db8:1:2:3:4:5:6", 1)), "2001:db8:1:2::/64"
        )
        self.assertEqual(
            sourceKey(IPv6Address("TCP", "2001:db8:1:2:ffff::1%eth0", 1)), "2001:db8:1:2::/64"
        )
        self.assertEqual(sourceKey(IPv6Address("TCP", "::ffff:192.0.2.9", 1)), "192.0.2.9")
        self.assertIsNone(sourceKey(UNIXAddress(b"/tmp/sock")))
        self.assertIsNone(sourceKey(IPv4Address("TCP", "not-an-ip", 1)))


class SourceLimitTests(SynchronousTestCase):
    """
    The receiving sides refuse sources that failed too often, and keep
    serving the others.
    """

    def failPlain(self, peer: Peer, times: int) -> None:
        for _ in range(times):
            peer.auth("PLAIN", b"\x00comp.example.net\x00wrong")

    def test_newConnectionRefused(self) -> None:
        """
        After C{maxFailures} failures from one address, its next
        connection is refused with C{policy-violation} before it sends
        anything; another address still authenticates; after the window
        the address may try again.
        """
        site = Site()
        first = site.connect()
        first.startTLS()
        self.failPlain(first, 2)
        second = site.connect()
        second.startTLS()
        self.failPlain(second, 2)

        refused = site.connect()
        self.assertEqual(len(refused.reader.headers), 1)
        self.assertEqual(refused.condition, "policy-violation")
        self.assertIn("retry in 61 seconds", refused.received[-1].toXml())
        refused.send(header())
        self.assertEqual(refused.received[-1:], refused.received[-1:])

        other = site.connect("198.51.100.2")
        other.login()
        self.assertIsNone(other.condition)
        self.assertEqual(other.bind("a.comp.example.net").getAttribute("type"), "result")

        site.clock.advance(61)
        again = site.connect()
        again.login()
        self.assertIsNone(again.condition)

    def test_openStreamRefusedAtNextAttempt(self) -> None:
        """
        A stream opened before its address got blocked is closed with
        C{policy-violation} at its next C{<auth/>}.
        """
        site = Site()
        early = site.connect()
        early.startTLS()
        busy = site.connect()
        busy.startTLS()
        self.failPlain(busy, 2)
        other = site.connect()
        other.startTLS()
        self.failPlain(other, 2)
        self.assertIsNone(early.condition)
        early.send("<auth xmlns='%s' mechanism='PLAIN'>=</auth>" % (NS_SASL,))
        self.assertEqual(early.condition, "policy-violation")

    def test_abortNotCounted(self) -> None:
        """
        An aborted exchange tests no credential and is not counted.
        """
        site = Site(limiter=AuthFailureLimiter(maxFailures=1))
        peer = site.connect()
        peer.startTLS()
        peer.auth("SCRAM-SHA-1", None)
        (reply,) = peer.send("<abort xmlns='%s'/>" % (NS_SASL,))
        self.assertEqual(failureCondition(reply), "aborted")
        self.assertFalse(site.limiter.blocked("192.0.2.1", 0))

    def test_handshakeFailuresCounted(self) -> None:
        """
        Wrong XEP-0114 handshakes count against the same limiter, and a
        blocked address is refused on both listeners.
        """
        site = Site()
        for _ in range(4):
            peer = site.connect(kind="xep0114")
            peer.send(
                "<stream:stream xmlns='jabber:component:accept' xmlns:stream='%s' "
                "to='legacy.example.net'>" % (NS_STREAMS,)
            )
            peer.send("<handshake>%s</handshake>" % (hashlib.sha1(b"x").hexdigest(),))
            self.assertEqual(peer.condition, "not-authorized")
        self.assertEqual(site.connect(kind="xep0114").condition, "policy-violation")
        self.assertEqual(site.connect().condition, "policy-violation")
        self.assertIsNone(site.connect("203.0.113.5", kind="xep0114").condition)

    def test_disabled(self) -> None:
        """
        With C{authFailures=None} nothing is limited beyond the per-stream
        attempts.
        """
        policy = ReceivingPolicy(domains={DOMAIN}, credentials=STORE, tlsOptions=PretendTLS(), authFailures=None)
        self.assertIsNone(policy.authFailures)
        self.assertIsInstance(
            ReceivingPolicy(domains={DOMAIN}, credentials=STORE, tlsOptions=PretendTLS()).authFailures,
            AuthFailureLimiter,
        )
        self.assertIsInstance(AcceptPolicy(secrets={}.get).authFailures, AuthFailureLimiter)


class BindAbuseTests(SynchronousTestCase):
    """
    Bind storms, names of others, and stanza floods get their errors, and
    the other sessions keep their routes.
    """

    def test_bindStorm(self) -> None:
        """
        Binding more than C{maxNamesPerSession} names is
        C{resource-constraint}; a name bound twice is C{conflict}; a name
        the identity may not use is C{not-allowed}; a missing hostname is
        C{bad-request}.
        """
        site = Site(maxNamesPerSession=5, maxStanzasPerSecond=10**6)
        peer = site.connect()
        peer.login()
        conditions = [stanzaErrorCondition(peer.bind("n%d.comp.example.net" % i)) for i in range(50)]
        self.assertEqual(conditions, [None] * 5 + ["resource-constraint"] * 45)
        self.assertEqual(stanzaErrorCondition(peer.bind("n0.comp.example.net")), "conflict")
        self.assertEqual(stanzaErrorCondition(peer.bind("evil.example.org")), "not-allowed")
        self.assertEqual(stanzaErrorCondition(peer.bind(DOMAIN)), "not-allowed")
        (reply,) = peer.send("<iq type='set' id='x'><bind xmlns='%s'/></iq>" % (NS_COMPONENT_0,))
        self.assertEqual(stanzaErrorCondition(reply), "bad-request")
        self.assertEqual(len(site.router.table), 5)
        self.assertIsNone(peer.condition)

    def test_unbindOthersNames(self) -> None:
        """
        Unbinding a name another session bound is C{item-not-found}, and
        the name stays routed to its owner; binding it is C{conflict}.
        """
        site = Site()
        owner = site.connect()
        owner.login()
        owner.bind("a.comp.example.net")
        attacker = site.connect("198.51.100.9")
        attacker.login()
        attacker.bind("b.comp.example.net")
        self.assertEqual(stanzaErrorCondition(attacker.bind("a.comp.example.net", "unbind")), "item-not-found")
        self.assertEqual(stanzaErrorCondition(attacker.bind("a.comp.example.net")), "conflict")
        self.assertIs(site.router.table.lookup("a.comp.example.net"), site.router.sessions[owner.xs])
        attacker.send(
            "<message from='b.comp.example.net' to='a.comp.example.net' id='m'><body>hi</body></message>"
        )
        owner.received += read(owner.transport, owner.reader)
        self.assertEqual(
            [(e.name, e.getAttribute("to")) for e in owner.received[-1:]],
            [("message", "a.comp.example.net")],
        )

    def test_stanzaFlood(self) -> None:
        """
        A session that sends more than C{maxStanzasPerSecond} stanzas is
        closed with C{policy-violation}; another session is still served.
        """
        site = Site(maxStanzasPerSecond=100)
        flooder = site.connect()
        flooder.login()
        flooder.bind("f.comp.example.net")
        other = site.connect("198.51.100.3")
        other.login()
        other.bind("o.comp.example.net")
        ping = "<iq type='get' id='p' from='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
        flooder.send((ping % ("f.comp.example.net", DOMAIN)) * 150)
        self.assertEqual(flooder.condition, "policy-violation")
        # The bind during negotiation is not routed, so not counted: 100
        # pings are answered, the 101st ends the stream.
        results = [e for e in flooder.received if e.name == "iq" and e.getAttribute("type") == "result"]
        self.assertEqual(len(results), 1 + 100)
        (reply,) = other.send(ping % ("o.comp.example.net", DOMAIN))
        self.assertEqual(reply.getAttribute("type"), "result")
