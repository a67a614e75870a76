# -*- test-case-name: tests.test_stream_accept -*-
"""
Tests for L{xmppcomp.stream.handshake} and L{xmppcomp.stream.acceptreceiving}:
the receiving side of XEP-0114 component connections.

The unit tests drive one stream through a L{StringTransport} and a
L{MemoryReactorClock}. The interoperability tests run a real slixmpp
C{ComponentXMPP} (C{tests/slixmpp_component.py}) in a subprocess against an
L{AcceptFactory} listening on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any, Callable

from twisted.internet import defer, reactor
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.protocols.jabber.xmlstream import STREAM_AUTHD_EVENT
from twisted.words.xish import domish
from twisted.words.xish.xmlstream import STREAM_END_EVENT, STREAM_ERROR_EVENT

from xmppcomp.ns import NS_COMPONENT_ACCEPT, NS_STREAMS
from xmppcomp.stream.acceptreceiving import (
    AcceptAuthenticator,
    AcceptFactory,
    AcceptPolicy,
)
from xmppcomp.stream.handshake import (
    checkAcceptHeader,
    checkHandshake,
    handshakeDigest,
    normaliseHostname,
)
from xmppcomp.stream.negotiating import NegotiatingXmlStream

from .streamhelpers import PeerReader, header, read, streamErrorCondition

HOSTNAME = "comp.example.net"
SECRET = "s3cret-shared-with-the-component"
OTHER_HOSTNAME = "other.example.net"
OTHER_SECRET = "another secret"
SECRETS = {HOSTNAME: SECRET, OTHER_HOSTNAME: OTHER_SECRET}
USER = "user@example.net"


def acceptHeader(
    to: str | None = HOSTNAME,
    namespace: str = NS_COMPONENT_ACCEPT,
    version: str | None = None,
) -> bytes:
    """
    A XEP-0114 component's stream header: no C{from}, no version.
    """
    return header(to=to, fromHost=None, namespace=namespace, version=version)


def emptyHandshake(element: domish.Element) -> bool:
    """
    Whether C{element} is an empty C{<handshake/>} of
    C{jabber:component:accept}.
    """
    return (
        (element.uri, element.name) == (NS_COMPONENT_ACCEPT, "handshake")
        and not element.children
        and not element.attributes
    )


def sha1Hex(text: str) -> str:
    """
    The hex SHA-1 of C{text}, computed here without the code under test.
    """
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class HandshakeDigestTests(SynchronousTestCase):
    """
    L{handshakeDigest} and L{checkHandshake} compute and check
    C{hex(SHA-1(id + secret))}.
    """

    def test_knownValue(self) -> None:
        """
        The digest is the lowercase hex SHA-1 of the stream id followed by
        the secret.
        """
        self.assertEqual(
            handshakeDigest("3BF96D32", "sNmlmt23"),
            "ded90d73df9971cc1672d744fc190bb54433aa5f",
        )

    def test_utf8(self) -> None:
        """
        Non-ASCII secrets are hashed as UTF-8.
        """
        self.assertEqual(
            handshakeDigest("id1", "s\N{EURO SIGN}cret"),
            "f310336d6ace94369033bd394ed680f6b301a992",
        )

    def test_accepts(self) -> None:
        """
        The right digest is accepted whatever its hex case and surrounding
        whitespace.
        """
        digest = sha1Hex("abc" + SECRET)
        self.assertTrue(checkHandshake("abc", SECRET, digest))
        self.assertTrue(checkHandshake("abc", SECRET, digest.upper()))
        self.assertTrue(checkHandshake("abc", SECRET, "\n  %s\t\n" % (digest,)))

    def test_refuses(self) -> None:
        """
        A digest of another id or secret, a truncated or empty digest, the
        secret itself and non-ASCII text are refused.
        """
        digest = sha1Hex("abc" + SECRET)
        self.assertFalse(checkHandshake("abd", SECRET, digest))
        self.assertFalse(checkHandshake("abc", SECRET + "x", digest))
        self.assertFalse(checkHandshake("abc", SECRET, digest[:-1]))
        self.assertFalse(checkHandshake("abc", SECRET, digest + "0"))
        self.assertFalse(checkHandshake("abc", SECRET, ""))
        self.assertFalse(checkHandshake("abc", SECRET, SECRET))
        self.assertFalse(checkHandshake("abc", SECRET, "\N{EURO SIGN}" * 40))


class AcceptHeaderTests(SynchronousTestCase):
    """
    L{normaliseHostname} and L{checkAcceptHeader} check the component's
    stream header without a stream.
    """

    def test_normaliseHostname(self) -> None:
        """
        Hostnames are case-folded and lose a trailing dot; JIDs with a
        localpart or resource, empty, malformed and overlong names are not
        hostnames.
        """
        self.assertEqual(normaliseHostname("Comp.Example.NET"), HOSTNAME)
        self.assertEqual(normaliseHostname("comp.example.net."), HOSTNAME)
        for bad in [
            "",
            ".",
            "user@comp.example.net",
            "comp.example.net/resource",
            "comp..example.net",
            "comp example.net",
            "a" * 1024,
        ]:
            self.assertIsNone(normaliseHostname(bad), bad)

    def parse(self, data: bytes) -> domish.Element:
        roots: list[domish.Element] = []
        stream = domish.elementStream()
        stream.DocumentStartEvent = roots.append
        stream.parse(data)
        (root,) = roots
        return root

    def test_checkAcceptHeader(self) -> None:
        """
        A C{jabber:component:accept} header returns the normalised C{to},
        with or without a version.
        """
        self.assertEqual(checkAcceptHeader(self.parse(acceptHeader())), HOSTNAME)
        self.assertEqual(
            checkAcceptHeader(self.parse(acceptHeader(to="COMP.example.net", version="1.0"))),
            HOSTNAME,
        )

    def test_checkAcceptHeaderErrors(self) -> None:
        """
        Each malformed header raises the matching stream error.
        """
        cases = [
            (acceptHeader(namespace="jabber:client"), "invalid-namespace"),
            (acceptHeader(to=None), "host-unknown"),
            (acceptHeader(to="user@comp.example.net"), "host-unknown"),
            (
                b"<s:stream xmlns='jabber:component:accept' xmlns:s='%s' to='x'>"
                % (NS_STREAMS.encode(),),
                "bad-namespace-prefix",
            ),
            (
                b"<stream:stream xmlns='jabber:component:accept'"
                b" xmlns:stream='urn:example:not-streams' to='x'>",
                "invalid-namespace",
            ),
        ]
        for data, condition in cases:
            e = self.assertRaises(StreamError, checkAcceptHeader, self.parse(data))
            self.assertEqual(e.condition, condition, data)


class Harness:
    """
    One accepting stream on a fake transport, and a reader for what it
    writes.
    """

    def __init__(self, secrets: Callable[[str], str | None] = SECRETS.get, **policyArgs: Any) -> None:
        self.looked: list[str] = []

        def lookup(hostname: str) -> str | None:
            self.looked.append(hostname)
            return secrets(hostname)

        self.policy = AcceptPolicy(secrets=lookup, **policyArgs)
        self.clock = MemoryReactorClock()
        self.factory = AcceptFactory(self.policy, reactor=self.clock)
        self.authd: list[Any] = []
        self.errors: list[Failure] = []
        self.factory.addBootstrap(STREAM_AUTHD_EVENT, self.authd.append)
        self.factory.addBootstrap(STREAM_ERROR_EVENT, self.errors.append)
        self.xs = self.factory.buildProtocol(None)
        self.transport = StringTransport()
        self.xs.makeConnection(self.transport)
        self.reader = PeerReader()

    @property
    def authenticator(self) -> AcceptAuthenticator:
        authenticator: AcceptAuthenticator = self.xs.authenticator
        return authenticator

    def send(self, data: bytes | str) -> list[domish.Element]:
        if isinstance(data, str):
            data = data.encode()
        self.xs.dataReceived(data)
        return read(self.transport, self.reader)

    def handshake(self, secret: str = SECRET) -> list[domish.Element]:
        streamId = self.reader.headers[-1]["id"]
        return self.send("<handshake>%s</handshake>" % (sha1Hex(streamId + secret),))

    def connect(self, secret: str = SECRET) -> list[domish.Element]:
        self.send(acceptHeader())
        return self.handshake(secret)


class PolicyTests(SynchronousTestCase):
    """
    L{AcceptPolicy} validates its values.
    """

    def test_defaults(self) -> None:
        """
        The timeouts and size limit have defaults.
        """
        policy = AcceptPolicy(secrets=SECRETS.get)
        self.assertEqual(policy.negotiationTimeout, 30.0)
        self.assertGreater(policy.maxStanzaSize, 0)
        self.assertGreater(policy.closeTimeout, 0)

    def test_invalid(self) -> None:
        """
        A secrets lookup that is not callable, or a non-positive timeout or
        size, is refused.
        """
        self.assertRaises(TypeError, AcceptPolicy, secrets=SECRETS)
        self.assertRaises(ValueError, AcceptPolicy, secrets=SECRETS.get, negotiationTimeout=0)
        self.assertRaises(ValueError, AcceptPolicy, secrets=SECRETS.get, maxStanzaSize=0)
        self.assertRaises(ValueError, AcceptPolicy, secrets=SECRETS.get, closeTimeout=-1)

    def test_frozen(self) -> None:
        """
        Policies are immutable values.
        """
        policy = AcceptPolicy(secrets=SECRETS.get)
        self.assertRaises(AttributeError, setattr, policy, "negotiationTimeout", 1.0)


class HeaderTests(SynchronousTestCase):
    """
    The accepting side checks the component's stream header and answers
    with its own.
    """

    def assertRefused(self, data: bytes, condition: str, **harnessArgs: Any) -> Harness:
        h = Harness(**harnessArgs)
        elements = h.send(data)
        self.assertEqual(len(h.reader.headers), 1, "a header precedes the error")
        self.assertEqual([streamErrorCondition(e) for e in elements], [condition])
        self.assertTrue(h.reader.ended)
        self.assertFalse(h.xs.negotiated)
        self.assertEqual(h.authd, [])
        self.assertIsNone(h.authenticator.hostname)
        self.assertEqual([f.value.condition for f in h.errors], [condition])
        return h

    def test_responseHeader(self) -> None:
        """
        The response header is in C{jabber:component:accept}, comes from the
        component's hostname, has a fresh id of at least 128 bits and no
        version, and no features follow it.
        """
        h = Harness()
        elements = h.send(acceptHeader())
        self.assertEqual(elements, [])
        (root,) = h.reader.headers
        self.assertEqual((root.uri, root.name), (NS_STREAMS, "stream"))
        self.assertEqual(root.defaultUri, NS_COMPONENT_ACCEPT)
        self.assertEqual(root["from"], HOSTNAME)
        self.assertFalse(root.hasAttribute("to"))
        self.assertFalse(root.hasAttribute("version"))
        self.assertGreaterEqual(len(root["id"]), 32)
        int(root["id"], 16)
        self.assertEqual(root["id"], h.xs.sid)

    def test_freshIds(self) -> None:
        """
        Every stream gets another id.
        """
        ids = set()
        for _ in range(5):
            h = Harness()
            h.send(acceptHeader())
            ids.add(h.reader.headers[0]["id"])
        self.assertEqual(len(ids), 5)

    def test_versionTolerated(self) -> None:
        """
        A component that sends a version (C{0.0} or C{1.0}) is accepted too,
        and answered without a version or features.
        """
        for version in ["0.0", "1.0"]:
            h = Harness()
            self.assertEqual(h.send(acceptHeader(version=version)), [])
            self.assertFalse(h.reader.headers[0].hasAttribute("version"))
            self.assertEqual([emptyHandshake(e) for e in h.handshake()], [True])

    def test_hostnameNormalised(self) -> None:
        """
        The secret is looked up under the normalised hostname, and the
        response comes from it.
        """
        h = Harness()
        h.send(acceptHeader(to="Comp.EXAMPLE.net"))
        self.assertEqual(h.looked, [HOSTNAME])
        self.assertEqual(h.reader.headers[0]["from"], HOSTNAME)

    def test_invalidNamespace(self) -> None:
        """
        A C{jabber:client} stream (XEP-0225 or a client) gets
        C{invalid-namespace}, in a header of C{jabber:component:accept}.
        """
        h = self.assertRefused(acceptHeader(namespace="jabber:client"), "invalid-namespace")
        self.assertEqual(h.reader.headers[0].defaultUri, NS_COMPONENT_ACCEPT)
        self.assertEqual(h.looked, [])

    def test_badNamespacePrefix(self) -> None:
        """
        The streams namespace under another prefix gets
        C{bad-namespace-prefix}.
        """
        self.assertRefused(
            b"<s:stream xmlns='jabber:component:accept' xmlns:s='%s' to='%s'>"
            % (NS_STREAMS.encode(), HOSTNAME.encode()),
            "bad-namespace-prefix",
        )

    def test_unknownHostname(self) -> None:
        """
        A hostname without a secret gets C{host-unknown}.
        """
        h = self.assertRefused(acceptHeader(to="unknown.example.net"), "host-unknown")
        self.assertEqual(h.looked, ["unknown.example.net"])
        self.assertFalse(h.reader.headers[0].hasAttribute("from"))

    def test_missingTo(self) -> None:
        """
        A header without C{to} gets C{host-unknown}.
        """
        self.assertRefused(acceptHeader(to=None), "host-unknown")

    def test_notAHostname(self) -> None:
        """
        A C{to} that is a user JID gets C{host-unknown} without a lookup.
        """
        h = self.assertRefused(acceptHeader(to="user@" + HOSTNAME), "host-unknown")
        self.assertEqual(h.looked, [])

    def test_lookupFails(self) -> None:
        """
        A secrets lookup that raises gets C{internal-server-error}, and the
        exception is logged.
        """

        def broken(hostname: str) -> str | None:
            raise RuntimeError("database down")

        self.assertRefused(acceptHeader(), "internal-server-error", secrets=broken)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class HandshakeTests(SynchronousTestCase):
    """
    After the headers, the component must send the right handshake before
    anything else.
    """

    def test_accepted(self) -> None:
        """
        The right handshake gets an empty C{<handshake/>}, completes
        negotiation with the normalised hostname and dispatches
        L{STREAM_AUTHD_EVENT} once.
        """
        h = Harness()
        h.send(acceptHeader(to="COMP.example.net"))
        streamId = h.reader.headers[-1]["id"]
        h.xs.dataReceived(b"<handshake>%s</handshake>" % (sha1Hex(streamId + SECRET).encode(),))
        written = h.transport.value()
        self.assertIn(written, [b"<handshake/>", b"<handshake xmlns='%s'/>" % (NS_COMPONENT_ACCEPT.encode(),)])
        replies = read(h.transport, h.reader)
        self.assertEqual([emptyHandshake(e) for e in replies], [True])
        self.assertTrue(h.xs.negotiated)
        self.assertEqual(h.authenticator.hostname, HOSTNAME)
        self.assertEqual(h.xs.otherEntity.full(), HOSTNAME)
        self.assertEqual(h.authd, [h.xs])
        self.assertEqual(h.errors, [])
        self.assertFalse(h.reader.ended)

    def test_caseAndWhitespace(self) -> None:
        """
        An uppercase digest with surrounding whitespace is accepted.
        """
        h = Harness()
        h.send(acceptHeader())
        digest = sha1Hex(h.xs.sid + SECRET).upper()
        replies = h.send("<handshake>\n  %s\n</handshake>" % (digest,))
        self.assertEqual([emptyHandshake(e) for e in replies], [True])
        self.assertTrue(h.xs.negotiated)

    def test_otherHostnamesSecret(self) -> None:
        """
        Each hostname has its own secret: another component's secret is
        refused with C{not-authorized}.
        """
        h = Harness()
        replies = h.connect(secret=OTHER_SECRET)
        self.assertEqual([streamErrorCondition(e) for e in replies], ["not-authorized"])
        self.assertFalse(h.xs.negotiated)

    def test_wrongHandshake(self) -> None:
        """
        A wrong handshake gets C{not-authorized}, the stream is closed, and
        nothing is dispatched.
        """
        h = Harness()
        replies = h.connect(secret="wrong")
        self.assertEqual([streamErrorCondition(e) for e in replies], ["not-authorized"])
        self.assertTrue(h.reader.ended)
        self.assertFalse(h.xs.negotiated)
        self.assertIsNone(h.authenticator.hostname)
        self.assertEqual(h.authd, [])
        self.assertEqual([f.value.condition for f in h.errors], ["not-authorized"])
        # The component closes its side; the connection is dropped.
        h.send("</stream:stream>")
        self.assertTrue(h.transport.disconnecting)

    def test_replayedDigest(self) -> None:
        """
        A digest computed for another stream id is refused: each stream has
        its own id.
        """
        first = Harness()
        first.send(acceptHeader())
        stale = sha1Hex(first.xs.sid + SECRET)
        h = Harness()
        h.send(acceptHeader())
        replies = h.send("<handshake>%s</handshake>" % (stale,))
        self.assertEqual([streamErrorCondition(e) for e in replies], ["not-authorized"])

    def test_stanzaBeforeHandshake(self) -> None:
        """
        Each stanza kind sent before the handshake gets C{not-authorized}
        and is not dispatched.
        """
        for stanza in [
            "<message to='%s'><body>hi</body></message>" % (USER,),
            "<presence/>",
            "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
        ]:
            h = Harness()
            seen: list[domish.Element] = []
            h.xs.addObserver("/*", seen.append)
            h.send(acceptHeader())
            replies = h.send(stanza)
            self.assertEqual([streamErrorCondition(e) for e in replies], ["not-authorized"])
            self.assertEqual(seen, [])
            self.assertFalse(h.xs.negotiated)

    def test_unsupportedElement(self) -> None:
        """
        Any other element before the handshake gets
        C{unsupported-stanza-type}, as does a handshake in another
        namespace.
        """
        for element in [
            "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
            "<handshake xmlns='urn:example:other'>00</handshake>",
            "<route/>",
        ]:
            h = Harness()
            h.send(acceptHeader())
            replies = h.send(element)
            self.assertEqual(
                [streamErrorCondition(e) for e in replies], ["unsupported-stanza-type"]
            )

    def test_elementsAfterRefusalDropped(self) -> None:
        """
        Elements that arrive after a stream error, while the stream closes,
        are dropped without another error.
        """
        h = Harness()
        h.connect(secret="wrong")
        seen: list[domish.Element] = []
        h.xs.addObserver("/*", seen.append)
        self.assertEqual(h.send("<message/>" + "<handshake>00</handshake>"), [])
        self.assertEqual(seen, [])
        self.assertEqual(len(h.errors), 1)

    def test_stanzasAfterHandshake(self) -> None:
        """
        Once accepted, stanzas are dispatched by the stream to its
        observers, and the stream carries stanzas the other way.
        """
        h = Harness()
        h.connect()
        seen: list[domish.Element] = []
        h.xs.addObserver("/message", seen.append)
        h.send("<message from='%s' to='%s'><body>hi</body></message>" % (HOSTNAME, USER))
        (message,) = seen
        self.assertEqual(message.uri, NS_COMPONENT_ACCEPT)
        self.assertEqual(message["from"], HOSTNAME)
        self.assertEqual(str(message.body), "hi")
        # A later handshake element is no longer intercepted.
        others: list[domish.Element] = []
        h.xs.addObserver("/handshake", others.append)
        self.assertEqual(h.send("<handshake/>"), [])
        self.assertEqual(len(others), 1)
        self.assertEqual(h.errors, [])

        reply = domish.Element((NS_COMPONENT_ACCEPT, "message"))
        reply["to"] = HOSTNAME
        reply["from"] = USER
        reply.addElement("body", content="back")
        h.xs.send(reply)
        (written,) = read(h.transport, h.reader)
        self.assertEqual(written["to"], HOSTNAME)
        self.assertEqual(str(written.body), "back")


class TimeoutTests(SynchronousTestCase):
    """
    The handshake must succeed within the negotiation timeout.
    """

    def test_noHeader(self) -> None:
        """
        A peer that never sends a header gets a header and
        C{connection-timeout} after the timeout.
        """
        h = Harness(negotiationTimeout=5.0)
        h.clock.advance(4.9)
        self.assertEqual(read(h.transport, h.reader), [])
        h.clock.advance(0.1)
        elements = read(h.transport, h.reader)
        self.assertEqual([streamErrorCondition(e) for e in elements], ["connection-timeout"])
        self.assertTrue(h.reader.ended)

    def test_noHandshake(self) -> None:
        """
        A component that sends its header but no handshake gets
        C{connection-timeout}.
        """
        h = Harness(negotiationTimeout=5.0)
        h.send(acceptHeader())
        h.clock.advance(5.0)
        elements = read(h.transport, h.reader)
        self.assertEqual([streamErrorCondition(e) for e in elements], ["connection-timeout"])
        self.assertFalse(h.xs.negotiated)

    def test_cancelledOnSuccess(self) -> None:
        """
        A successful handshake cancels the timeout.
        """
        h = Harness(negotiationTimeout=5.0)
        h.connect()
        self.assertEqual(h.clock.getDelayedCalls(), [])
        h.clock.advance(60)
        self.assertEqual(read(h.transport, h.reader), [])
        self.assertFalse(h.transport.disconnecting)

    def test_cancelledOnConnectionLost(self) -> None:
        """
        Losing the connection cancels the timeout.
        """
        h = Harness(negotiationTimeout=5.0)
        h.send(acceptHeader())
        h.xs.connectionLost(Failure(Exception("gone")))
        self.assertEqual(h.clock.getDelayedCalls(), [])


class LoggingTests(SynchronousTestCase):
    """
    Each outcome is logged with the peer address and hostname; the secret
    and the digest never are.
    """

    def logged(self, secret: str) -> tuple[Harness, list[str], str]:
        with capturedLogs() as events:
            h = Harness()
            h.transport = StringTransport(peerAddress=_Address("198.51.100.7"))
            h.xs.transport = h.transport
            h.send(acceptHeader())
            digest = sha1Hex(h.xs.sid + secret)
            h.send("<handshake>%s</handshake>" % (digest,))
        texts = [formatEvent(e) for e in events]
        raw = repr(list(events))
        for leaked in (SECRET, sha1Hex(h.xs.sid + SECRET), digest):
            self.assertNotIn(leaked, raw)
            self.assertNotIn(leaked, "\n".join(texts))
        return h, texts, raw

    def test_accepted(self) -> None:
        """
        Acceptance is logged with the hostname and the peer.
        """
        _, texts, _ = self.logged(SECRET)
        (line,) = [t for t in texts if "accepted" in t]
        self.assertIn(HOSTNAME, line)
        self.assertIn("198.51.100.7", line)

    def test_refused(self) -> None:
        """
        A refused handshake is logged with the hostname, the peer and the
        condition.
        """
        _, texts, _ = self.logged("wrong")
        (line,) = [t for t in texts if "refusing" in t]
        self.assertIn(HOSTNAME, line)
        self.assertIn("198.51.100.7", line)
        self.assertIn("not-authorized", line)


class _Address:
    """
    A stand-in peer address whose C{str} is the host.
    """

    def __init__(self, host: str) -> None:
        self.host = host

    def __str__(self) -> str:
        return "IPv4Address(TCP, %r, 5347)" % (self.host,)


# Interoperability with slixmpp, over loopback TCP


#: How long one interoperability test may take before the component is
#: killed and the test fails.
INTEROP_TIMEOUT = 30.0

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slixmpp_component.py")


class ComponentProcess(ProcessProtocol):
    """
    Collects the JSON event lines the slixmpp component prints.

    @ivar events: every event read, in order.
    @ivar stderr: what the component wrote to standard error.
    @ivar ended: fires with the exit status when the process has ended.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.stderr = b""
        self.running = False
        self.exitCode: int | None = None
        self.ended: defer.Deferred[int | None] = defer.Deferred()
        self._buffer = b""
        self._waiters: list[tuple[str, defer.Deferred[dict[str, Any]]]] = []

    def connectionMade(self) -> None:
        self.running = True
        assert self.transport is not None
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            event = json.loads(line)
            self.events.append(event)
            waiting, self._waiters = self._waiters, []
            for name, d in waiting:
                if d.called:
                    continue
                if event["event"] == name:
                    d.callback(event)
                else:
                    self._waiters.append((name, d))

    def errReceived(self, data: bytes) -> None:
        self.stderr += data

    def processEnded(self, reason: Failure) -> None:
        self.running = False
        if reason.check(ProcessDone, ProcessTerminated):
            self.exitCode = reason.value.exitCode
        waiting, self._waiters = self._waiters, []
        for name, d in waiting:
            if not d.called:
                d.errback(
                    AssertionError(
                        "the component exited before %r: %s" % (name, self.describe())
                    )
                )
        self.ended.callback(self.exitCode)

    def waitFor(self, name: str) -> defer.Deferred[dict[str, Any]]:
        """
        The first event called C{name}, now or when it is printed.
        """
        for event in self.events:
            if event["event"] == name:
                return defer.succeed(event)
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        if not self.running and self.ended.called:
            d.errback(AssertionError("the component has exited: " + self.describe()))
        else:
            self._waiters.append((name, d))
        return d

    def names(self) -> list[str]:
        return [event["event"] for event in self.events]

    def describe(self) -> str:
        return "events %r, exit status %r, stderr:\n%s" % (
            self.events,
            self.exitCode,
            self.stderr.decode("utf-8", "replace"),
        )


class SlixmppInteropTests(TestCase):
    """
    A real slixmpp C{ComponentXMPP}, in a subprocess, connects to an
    L{AcceptFactory} on 127.0.0.1.
    """

    def setUp(self) -> None:
        self.servers: list[NegotiatingXmlStream] = []
        self.serverEnded: list[defer.Deferred[None]] = []
        self.serverErrors: list[str] = []
        self.messages: defer.DeferredQueue[domish.Element] = defer.DeferredQueue()
        self.accepted: defer.Deferred[NegotiatingXmlStream] = defer.Deferred()
        self.pending: list[defer.Deferred[Any]] = []
        self.expired = False

        factory = AcceptFactory(AcceptPolicy(secrets=SECRETS.get, closeTimeout=5.0))
        factory.addBootstrap(STREAM_AUTHD_EVENT, self._onAccepted)
        factory.addBootstrap(
            STREAM_ERROR_EVENT, lambda f: self.serverErrors.append(f.value.condition)
        )
        build = factory.buildProtocol

        def buildProtocol(addr: Any) -> NegotiatingXmlStream:
            xs = build(addr)
            ended: defer.Deferred[None] = defer.Deferred()
            xs.addObserver(STREAM_END_EVENT, lambda reason: ended.called or ended.callback(None))
            self.servers.append(xs)
            self.serverEnded.append(ended)
            return xs

        factory.buildProtocol = buildProtocol  # type: ignore[method-assign]
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.process = ComponentProcess()
        self.deadline: IDelayedCall = reactor.callLater(INTEROP_TIMEOUT, self._expire)
        self.addCleanup(self._shutdown)

    def _onAccepted(self, xs: NegotiatingXmlStream) -> None:
        """
        Observe the stanzas of an accepted stream at once, before the
        component's first message can arrive.
        """
        xs.addObserver("/message", self.messages.put)
        if not self.accepted.called:
            self.accepted.callback(xs)

    def spawn(self, secret: str) -> None:
        """
        Start the slixmpp component as C{HOSTNAME} with C{secret}.
        """
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env["PYTHONUNBUFFERED"] = "1"
        reactor.spawnProcess(
            self.process,
            sys.executable,
            [
                sys.executable,
                SCRIPT,
                HOSTNAME,
                secret,
                "127.0.0.1",
                str(self.port.getHost().port),
                "--lifetime",
                str(INTEROP_TIMEOUT + 10),
            ],
            env=env,
        )

    def wait(self, d: defer.Deferred[Any]) -> defer.Deferred[Any]:
        """
        Bound C{d} by the test's deadline: when it expires, C{d} is
        cancelled and the test fails with what the component printed.
        """
        self.pending.append(d)

        def explain(failure: Failure) -> Failure:
            if self.expired and failure.check(defer.CancelledError):
                raise self.failureException(
                    "timed out after %g s; component %s"
                    % (INTEROP_TIMEOUT, self.process.describe())
                )
            return failure

        return d.addErrback(explain)

    def _expire(self) -> None:
        """
        The deadline passed: kill the component and cancel every wait.
        """
        self.expired = True
        if self.process.running:
            self.process.transport.signalProcess("KILL")  # type: ignore[union-attr]
        for d in self.pending:
            if not d.called:
                d.cancel()

    @defer.inlineCallbacks
    def _shutdown(self) -> Any:
        """
        Kill the component if it still runs, wait for it to end, close the
        server streams and stop listening.
        """
        if self.deadline.active():
            self.deadline.cancel()
        if self.process.running:
            self.process.transport.signalProcess("KILL")  # type: ignore[union-attr]
        if self.process.transport is not None:
            yield self.process.ended
        for xs in self.servers:
            if xs.transport is not None and xs.transport.connected:
                xs.transport.abortConnection()
        yield defer.gatherResults(self.serverEnded)
        yield self.port.stopListening()

    def sendTo(self, xs: NegotiatingXmlStream, body: str) -> None:
        """
        Send a message from C{USER} to the component.
        """
        message = domish.Element((NS_COMPONENT_ACCEPT, "message"))
        message["from"] = USER
        message["to"] = HOSTNAME
        message["type"] = "chat"
        message.addElement("body", content=body)
        xs.send(message)

    @defer.inlineCallbacks
    def test_messagesBothWays(self) -> Any:
        """
        slixmpp completes the handshake, its message reaches the router side,
        a message from the router side reaches it, and its echo comes back.
        Asked to quit, it closes its stream and exits.
        """
        self.spawn(SECRET)
        xs = yield self.wait(self.accepted)
        self.assertEqual(xs.authenticator.hostname, HOSTNAME)
        self.assertTrue(xs.negotiated)

        greeting = yield self.wait(self.messages.get())
        self.assertEqual(greeting.uri, NS_COMPONENT_ACCEPT)
        self.assertEqual(greeting.getAttribute("from"), HOSTNAME)
        self.assertEqual(greeting.getAttribute("to"), USER)
        self.assertEqual(str(greeting.body), "hello")
        yield self.wait(self.process.waitFor("session_start"))

        self.sendTo(xs, "ping")
        echo = yield self.wait(self.messages.get())
        self.assertEqual(echo.getAttribute("from"), HOSTNAME)
        self.assertEqual(echo.getAttribute("to"), USER)
        self.assertEqual(str(echo.body), "echo: ping")
        # The printed event may trail the echo: stdout and TCP are not ordered.
        received = yield self.wait(self.process.waitFor("message"))
        self.assertEqual(received["from"], USER)
        self.assertEqual(received["to"], HOSTNAME)
        self.assertEqual(received["body"], "ping")

        self.sendTo(xs, "quit")
        status = yield self.wait(self.process.ended)
        self.assertEqual(status, 0, self.process.describe())
        yield self.wait(self.serverEnded[0])
        self.assertEqual(self.serverErrors, [])
        self.assertNotIn("stream_error", self.process.names())
        self.assertEqual(len(self.servers), 1, "one connection, no retries")

    @defer.inlineCallbacks
    def test_wrongSecret(self) -> Any:
        """
        slixmpp with the wrong secret is refused with C{not-authorized}: the
        router side sends the stream error, slixmpp reports it and is
        disconnected without a session.
        """
        self.spawn("not the secret")
        status = yield self.wait(self.process.ended)
        yield self.wait(defer.gatherResults(self.serverEnded))
        self.assertEqual(self.serverErrors, ["not-authorized"])
        self.assertFalse(self.accepted.called)
        (server,) = self.servers
        self.assertFalse(server.negotiated)
        self.assertIsNone(server.authenticator.hostname)
        error = server.streamEnded
        self.assertIsNotNone(error)
        self.assertEqual(error.value.condition, "not-authorized")
        self.assertIn(
            {"event": "stream_error", "condition": "not-authorized"}, self.process.events
        )
        self.assertNotIn("session_start", self.process.names())
        self.assertIn("disconnected", self.process.names())
        self.assertEqual(status, 3, self.process.describe())
