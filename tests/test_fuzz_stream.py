# -*- test-case-name: tests.test_fuzz_stream -*-
"""
Fuzzing the XML streams of both ends: property tests (hypothesis, fixed
seed, bounded) and the drivers that the coverage-guided harness under
C{fuzz/} shares with them.

Every input must end in a stream error of RFC 6120 or a clean close: no
exception out of C{dataReceived}, nothing logged as an error, no stream
left open once the clock ran past every timeout, no timer or route left
once the connection is lost, only well-formed XML written, and memory
bounded by the stanza limit.

The drivers run one stream of each kind on
a L{StringTransport} and a L{MemoryReactorClock}, fed byte sequences, then
run past every timeout and checked.

Each driver builds the real stack a peer meets: the receiving side
(L{ReceivingFactory} with the L{Router}'s hostname bind and routing), the
XEP-0114 side (L{AcceptFactory} on the same router) and the initiating side
(L{InitiatingFactory}). Recorded negotiations (L{TRANSCRIPTS}) are lists of
I{flights}: the bytes one peer sends before it waits for an answer. A
stream restart (after STARTTLS and SASL) drops whatever followed it in the
same read, so a flight boundary is also a read boundary.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Callable, Sequence

import attrs
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.words.xish import domish

from xmppcomp.config import RouterLimits
from xmppcomp.ns import NS_COMPONENT_0, NS_PING, NS_SASL, NS_STREAMS, NS_TLS
from xmppcomp.router.service import Router
from xmppcomp.stream import acceptreceiving, receiving
from xmppcomp.stream.acceptreceiving import AcceptFactory, AcceptPolicy
from xmppcomp.stream.initiating import InitiatingFactory, InitiatingPolicy
from xmppcomp.stream.receiving import ReceivingFactory, ReceivingPolicy
from xmppcomp.stream.sasl import MemoryCredentialStore
from xmppcomp.testing import FakeTLSTransport, PretendTLS


DOMAIN = "example.net"
IDENTITY = "comp.example.net"
SECRET = "fuzzing secret"
ACCEPT_HOST = "legacy.example.net"
ACCEPT_SECRET = "legacy secret"
FIXED_ID = "fuzz-stream-id"

#: A small stanza limit, so that the fuzzer reaches it with small inputs.
MAX_STANZA = 2048
NEGOTIATION_TIMEOUT = 30.0
CLOSE_TIMEOUT = 10.0

STORE = MemoryCredentialStore()
STORE.add(IDENTITY, SECRET)

#: Every stream error condition of RFC 6120 section 4.9.3.
STREAM_CONDITIONS = frozenset(
    """bad-format bad-namespace-prefix conflict connection-timeout host-gone
    host-unknown improper-addressing internal-server-error invalid-from
    invalid-namespace invalid-xml not-authorized not-well-formed
    policy-violation remote-connection-failed reset resource-constraint
    restricted-xml see-other-host system-shutdown undefined-condition
    unsupported-encoding unsupported-feature unsupported-stanza-type
    unsupported-version""".split()
)

_HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' %s>"
)


def _clientHeader() -> bytes:
    return (
        _HEADER
        % ("jabber:client", NS_STREAMS, "to='%s' from='%s' version='1.0'" % (DOMAIN, IDENTITY))
    ).encode()


def _plain() -> bytes:
    return base64.b64encode(b"\x00" + IDENTITY.encode() + b"\x00" + SECRET.encode())


def _handshake() -> bytes:
    return hashlib.sha1((FIXED_ID + ACCEPT_SECRET).encode()).hexdigest().encode()


#: Recorded negotiations, as flights of the peer's bytes, by side.
TRANSCRIPTS: dict[str, list[bytes]] = {
    "receiving": [
        _clientHeader() + b"<starttls xmlns='%s'/>" % (NS_TLS.encode(),),
        _clientHeader()
        + b"<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL.encode(), _plain()),
        _clientHeader()
        + b"<iq type='set' id='b1'><bind xmlns='%s'><hostname>a.%s</hostname></bind></iq>"
        % (NS_COMPONENT_0.encode(), IDENTITY.encode())
        + b"<message from='a.%s' to='x@nowhere.%s' id='m1'><body>hi &amp; &#x263a;</body></message>"
        % (IDENTITY.encode(), DOMAIN.encode())
        + b"<iq type='get' id='p1' from='a.%s' to='%s'><ping xmlns='%s'/></iq>"
        % (IDENTITY.encode(), DOMAIN.encode(), NS_PING.encode())
        + b"<iq type='set' id='u1'><unbind xmlns='%s'><hostname>a.%s</hostname></unbind></iq>"
        % (NS_COMPONENT_0.encode(), IDENTITY.encode())
        + b"</stream:stream>",
    ],
    "accept": [
        (
            _HEADER
            % ("jabber:component:accept", NS_STREAMS, "to='%s'" % (ACCEPT_HOST,))
        ).encode(),
        b"<handshake>%s</handshake>" % (_handshake(),),
        b"<message from='%s' to='%s' id='m1'><body>hi</body></message>"
        % (ACCEPT_HOST.encode(), DOMAIN.encode())
        + b"<iq type='get' id='p1' from='%s' to='%s'><ping xmlns='%s'/></iq>"
        % (ACCEPT_HOST.encode(), DOMAIN.encode(), NS_PING.encode())
        + b"</stream:stream>",
    ],
    "initiating": [
        (
            _HEADER
            % ("jabber:client", NS_STREAMS, "from='%s' id='s1' version='1.0'" % (DOMAIN,))
        ).encode()
        + b"<stream:features><starttls xmlns='%s'><required/></starttls></stream:features>"
        % (NS_TLS.encode(),),
        b"<proceed xmlns='%s'/>" % (NS_TLS.encode(),),
        (
            _HEADER
            % ("jabber:client", NS_STREAMS, "from='%s' id='s2' version='1.0'" % (DOMAIN,))
        ).encode()
        + b"<stream:features><mechanisms xmlns='%s'><mechanism>PLAIN</mechanism>"
        b"<required/></mechanisms></stream:features>" % (NS_SASL.encode(),),
        b"<success xmlns='%s'/>" % (NS_SASL.encode(),),
        (
            _HEADER
            % ("jabber:client", NS_STREAMS, "from='%s' id='s3' version='1.0'" % (DOMAIN,))
        ).encode()
        + b"<stream:features/>"
        + b"<message from='x@%s' to='%s' id='m1'><body>hi</body></message>"
        % (DOMAIN.encode(), IDENTITY.encode())
        + b"</stream:stream>",
    ],
}

SIDES = tuple(TRANSCRIPTS)


class FuzzCrash(AssertionError):
    """
    An invariant of L{StreamRun.check} did not hold.
    """


@attrs.define
class Outcome:
    """
    What one run did, for comparing runs.

    @ivar elements: C{(name, type or condition)} of each first-level
        element written, in order.
    @ivar negotiated: whether negotiation completed.
    @ivar disconnected: whether the transport was closed after every
        timeout ran.
    """

    elements: list[tuple[str, str | None]]
    negotiated: bool
    disconnected: bool


def _condition(element: domish.Element) -> str | None:
    for child in element.elements():
        if child.uri == "urn:ietf:params:xml:ns:xmpp-streams" and child.name != "text":
            return str(child.name)
    return None


class _Reader:
    """
    Parses what one side wrote with a plain expat stream per document, as a
    lenient peer would; raises if it is not well-formed.
    """

    def __init__(self) -> None:
        self.elements: list[domish.Element] = []
        self.headers = 0
        self.ended = False
        self._stream: Any = None

    def feed(self, data: bytes) -> None:
        marker = b"<stream:stream"
        while data:
            start = data.find(marker)
            if self._stream is None or start == 0:
                if self._stream is not None and not self.ended:
                    # A new header without a closing tag: a restart.
                    pass
                self._stream = domish.elementStream()
                self._stream.DocumentStartEvent = self._start
                self._stream.ElementEvent = self.elements.append
                self._stream.DocumentEndEvent = self._end
                if start > 0:
                    data = data[start:]
            nextStart = data.find(marker, 1)
            if nextStart == -1:
                chunk, data = data, b""
            else:
                chunk, data = data[:nextStart], data[nextStart:]
            self._stream.parse(chunk)
            if nextStart != -1:
                self._stream = None

    def _start(self, root: domish.Element) -> None:
        self.headers += 1

    def _end(self) -> None:
        self.ended = True


class StreamRun:
    """
    One stream of one side on a fake transport and clock.

    @ivar side: C{"receiving"}, C{"accept"} or C{"initiating"}.
    @ivar xs: the stream.
    @ivar transport: its transport.
    @ivar clock: its reactor.
    @ivar router: the router of the receiving sides.
    @ivar written: everything the stream wrote.
    """

    def __init__(self, side: str, patch: Callable[[object, str, object], None] | None = None) -> None:
        self.side = side
        self.clock = MemoryReactorClock()
        self.written = b""
        self.outcomes: list[object] = []
        self.router = Router(
            DOMAIN,
            lambda identity, hostname: hostname == identity
            or hostname.endswith("." + identity),
            RouterLimits(maxStanzaSize=MAX_STANZA),
            reactor=self.clock,
        )
        _fixStreamIds(patch)
        if side == "receiving":
            factory: Any = ReceivingFactory(
                ReceivingPolicy(
                    domains={DOMAIN},
                    credentials=STORE,
                    tlsOptions=PretendTLS(),
                    maxStanzaSize=MAX_STANZA,
                    negotiationTimeout=NEGOTIATION_TIMEOUT,
                    closeTimeout=CLOSE_TIMEOUT,
                    features=self.router.receivingFeatures(),
                ),
                reactor=self.clock,
            )
            self.router.addBootstraps(factory, "xep0225")
        elif side == "accept":
            factory = AcceptFactory(
                AcceptPolicy(
                    secrets={ACCEPT_HOST: ACCEPT_SECRET}.get,
                    negotiationTimeout=NEGOTIATION_TIMEOUT,
                    maxStanzaSize=MAX_STANZA,
                    closeTimeout=CLOSE_TIMEOUT,
                ),
                reactor=self.clock,
            )
            self.router.addBootstraps(factory, "xep0114")
        elif side == "initiating":
            factory = InitiatingFactory(
                InitiatingPolicy(
                    serverDomain=DOMAIN,
                    identity=IDENTITY,
                    secret=SECRET,
                    tlsCreator=PretendTLS(),
                    mechanisms=["PLAIN"],
                    negotiationTimeout=NEGOTIATION_TIMEOUT,
                    maxStanzaSize=MAX_STANZA,
                    closeTimeout=CLOSE_TIMEOUT,
                ),
                reactor=self.clock,
            )
        else:
            raise ValueError(side)
        self.xs = factory.buildProtocol(None)
        from twisted.words.protocols.jabber.xmlstream import STREAM_AUTHD_EVENT

        self.lateAuth: list[object] = []
        self.xs.addObserver(
            STREAM_AUTHD_EVENT,
            lambda xs: self.lateAuth.append(xs) if xs.streamEnded is not None else None,
        )
        self.transport = FakeTLSTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 5555))
        self.xs.makeConnection(self.transport)
        if side == "initiating":
            self.xs.authenticator.negotiated.addBoth(self.outcomes.append)
        self._collect()

    def _collect(self) -> None:
        self.written += self.transport.value()
        self.transport.clear()

    def feed(self, data: bytes) -> None:
        """
        Deliver one read, as a reactor would: nothing after the transport
        was closed.
        """
        if self.transport.disconnecting:
            return
        self.xs.dataReceived(data)
        self._collect()

    def feedAll(self, chunks: Sequence[bytes]) -> None:
        for chunk in chunks:
            self.feed(chunk)

    @property
    def negotiated(self) -> bool:
        if self.side == "initiating":
            return bool(self.outcomes) and not isinstance(self.outcomes[0], Failure)
        return bool(self.xs.negotiated)

    def finish(self) -> Outcome:
        """
        Run the clock past every timeout, check the invariants, then lose
        the connection and check that no timer is left.

        @raise FuzzCrash: an invariant did not hold.
        """
        for _ in range(4):
            self.clock.advance(NEGOTIATION_TIMEOUT + 2 * CLOSE_TIMEOUT + 1)
        self._collect()
        negotiated = self.negotiated
        disconnected = bool(self.transport.disconnecting)
        if self.lateAuth:
            raise FuzzCrash("negotiation completed after the stream had ended")
        if not negotiated and not disconnected:
            raise FuzzCrash("a stream that did not negotiate is still open after every timeout")
        reader = _Reader()
        try:
            reader.feed(self.written)
        except Exception as e:
            raise FuzzCrash("wrote bad XML %r: %s" % (self.written[-300:], e)) from e
        elements: list[tuple[str, str | None]] = []
        errors = 0
        for element in reader.elements:
            if (element.uri, element.name) == (NS_STREAMS, "error"):
                condition = _condition(element)
                if condition not in STREAM_CONDITIONS:
                    raise FuzzCrash("unknown stream error condition %r" % (condition,))
                errors += 1
                elements.append(("stream:error", condition))
            else:
                elements.append((str(element.name), element.getAttribute("type")))
        if errors > 1:
            raise FuzzCrash("more than one stream error: %r" % (elements,))
        if errors and elements[-1][0] != "stream:error":
            raise FuzzCrash("data written after the stream error: %r" % (elements,))
        if errors and not reader.ended:
            raise FuzzCrash("no closing tag after the stream error")
        self.xs.connectionLost(Failure(ConnectionDone()))
        self._collect()
        left = [call for call in self.clock.getDelayedCalls() if call.active()]
        if left:
            raise FuzzCrash("timers left after the connection was lost: %r" % (left,))
        if self.side != "initiating" and self.router.sessions:
            raise FuzzCrash("the router kept a session after the connection was lost")
        if self.side != "initiating" and len(self.router.table):
            raise FuzzCrash("the router kept routes after the connection was lost")
        return Outcome(elements, negotiated, disconnected)


def _fixStreamIds(patch: Callable[[object, str, object], None] | None) -> None:
    """
    Make the receiving sides' stream ids fixed, so that a recorded
    handshake stays valid. C{patch} is L{TestCase.patch} in tests (undone
    after the test); the fuzz harness patches for good.
    """
    fixed = lambda: FIXED_ID  # noqa: E731
    for module in (receiving, acceptreceiving):
        if patch is not None:
            patch(module, "newStreamId", fixed)
        else:
            module.newStreamId = fixed  # type: ignore[attr-defined]


def run(side: str, chunks: Sequence[bytes], patch: Any = None) -> Outcome:
    """
    Feed C{chunks} to a new stream of C{side} and finish it.
    """
    stream = StreamRun(side, patch)
    stream.feedAll(chunks)
    return stream.finish()


# Mutations, shared by hypothesis and atheris.

#: Tokens worth inserting: markup, forbidden XML, odd encodings.
TOKENS: tuple[bytes, ...] = (
    b"<", b">", b"/>", b"</", b"&", b"&lt;", b"&#0;", b"&#xD800;", b"&#x10FFFF;", b"&lol;",
    b"&amp", b"'", b'"', b"=", b"xmlns='urn:x'", b"xmlns:stream='urn:x'",
    b"xmlns=''", b"xml:lang='en'", b"<!DOCTYPE x>", b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"<!ENTITY a SYSTEM 'file:///etc/passwd'>", b"<!--", b"-->", b"<?pi x?>",
    b"<?xml version='1.0' encoding='UTF-16'?>", b"<?xml version='1.1'?>",
    b"<![CDATA[", b"]]>", b"\x00", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf",
    b"</stream:stream>", b"<stream:stream>", b"<stream:error/>",
    b"<stream:features/>", b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>=</auth>",
    b"<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
    b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>AAA</response>",
    b"<iq type='set' id='x'><bind xmlns='urn:xmpp:component:0'><hostname/></bind></iq>",
    b"<iq type='result' id='x'/>", b"<presence/>", b"<message to=''/>",
    b"a" * 300, b" " * 100, b"<a>" * 50,
)


def mutate(flights: Sequence[bytes], ops: Sequence[tuple[int, int, int, bytes]]) -> list[bytes]:
    """
    Apply mutations to a copy of C{flights}. Each op is C{(kind, flight,
    position, payload)}, numbers taken modulo what fits: 0 replaces a byte,
    1 inserts C{payload}, 2 deletes up to 64 bytes, 3 duplicates a range,
    4 truncates the flight, 5 drops the flight, 6 repeats the flight,
    7 inserts a token of L{TOKENS}, 8 swaps two flights.
    """
    out = list(flights)
    for kind, which, position, payload in ops:
        if not out:
            out.append(b"")
        i = which % len(out)
        data = out[i]
        p = position % (len(data) + 1)
        kind %= 9
        if kind == 0 and data:
            q = min(p, len(data) - 1)
            data = data[:q] + (payload[:1] or b"\x00") + data[q + 1 :]
        elif kind == 1:
            data = data[:p] + payload[:64]
            data += out[i][p:]
        elif kind == 2:
            data = data[:p] + data[p + 1 + (position // 7) % 64 :]
        elif kind == 3:
            data = data[:p] + data[p : p + 1 + (position // 5) % 128] * 2 + data[p + 1 + (position // 5) % 128 :]
        elif kind == 4:
            data = data[:p]
        elif kind == 5:
            del out[i]
            continue
        elif kind == 6:
            out.insert(i, data)
        elif kind == 7:
            token = TOKENS[(position // 3 + len(payload)) % len(TOKENS)]
            data = data[:p] + token + data[p:]
        elif kind == 8 and len(out) > 1:
            j = (i + 1 + position) % len(out)
            out[i], out[j] = out[j], out[i]
            continue
        out[i] = data
    return out


def split(flights: Sequence[bytes], cuts: Sequence[int]) -> list[bytes]:
    """
    Cut each flight into reads at positions drawn from C{cuts} (cycled),
    so the bytes arrive in pieces; the flight boundaries stay read
    boundaries.
    """
    chunks: list[bytes] = []
    for n, flight in enumerate(flights):
        positions = sorted({c % (len(flight) + 1) for c in cuts[n::max(1, len(flights))]})
        start = 0
        for p in positions:
            if p > start:
                chunks.append(flight[start:p])
                start = p
        chunks.append(flight[start:])
    return chunks


# The tests.

import tracemalloc  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from twisted.trial.unittest import SynchronousTestCase  # noqa: E402

#: Deterministic and bounded: the same examples on every run, no deadline
#: (the clock is fake, the machine may be slow), no example database.
FUZZ = settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_ops = st.lists(
    st.tuples(
        st.integers(0, 8),
        st.integers(0, 7),
        st.integers(0, 4096),
        st.binary(max_size=16),
    ),
    max_size=6,
)
_cuts = st.lists(st.integers(0, 4096), max_size=12)

_name = st.sampled_from(
    ["message", "iq", "presence", "a", "stream:features", "body", "bind", "auth", "x:y", "handshake"]
)
_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)


@st.composite
def _element(draw: Any, depth: int = 0) -> bytes:
    """
    A random element: a known or odd name, random attributes and
    namespaces, text (escaped) and children.
    """
    name = draw(_name)
    attributes = draw(
        st.dictionaries(
            st.sampled_from(["to", "from", "id", "type", "xmlns", "xmlns:x", "xml:lang", "mechanism"]),
            _text,
            max_size=4,
        )
    )
    attrText = "".join(
        " %s='%s'" % (k, v.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;"))
        for k, v in attributes.items()
    )
    children = b""
    if depth < 4:
        children = b"".join(draw(st.lists(_element(depth + 1), max_size=3)))
    text = draw(_text).replace("&", "&amp;").replace("<", "&lt;").encode()
    return b"<%s%s>%s%s</%s>" % (name.encode(), attrText.encode(), text, children, name.encode())


class FuzzTestCase(SynchronousTestCase):
    """
    Runs inputs through L{run} and checks that nothing was logged as an
    error.
    """

    def check(self, side: str, chunks: Sequence[bytes]) -> Outcome:
        outcome = run(side, chunks, self.patch)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertTrue(outcome.negotiated or outcome.disconnected)
        return outcome


class TranscriptTests(FuzzTestCase):
    """
    The recorded negotiations complete; they are the seeds of the fuzzing.
    """

    def test_receiving(self) -> None:
        """
        TLS, PLAIN, bind, a bounced message, a ping, unbind and close.
        """
        outcome = self.check("receiving", TRANSCRIPTS["receiving"])
        self.assertTrue(outcome.negotiated)
        self.assertEqual(
            outcome.elements,
            [
                ("features", None),
                ("proceed", None),
                ("features", None),
                ("success", None),
                ("features", None),
                ("iq", "result"),
                ("message", "error"),
                ("iq", "result"),
                ("iq", "result"),
            ],
        )

    def test_accept(self) -> None:
        """
        The XEP-0114 handshake, a bounced message, a ping, and close.
        """
        outcome = self.check("accept", TRANSCRIPTS["accept"])
        self.assertTrue(outcome.negotiated)
        self.assertEqual(
            outcome.elements, [("handshake", None), ("message", "error"), ("iq", "result")]
        )

    def test_initiating(self) -> None:
        """
        The component side: STARTTLS, PLAIN, no feature left.
        """
        outcome = self.check("initiating", TRANSCRIPTS["initiating"])
        self.assertTrue(outcome.negotiated)
        self.assertEqual(outcome.elements, [("starttls", None), ("auth", None)])


class RefusedStreamTests(FuzzTestCase):
    """
    Once a receiving side sent a stream error, nothing the peer sends while
    the stream closes is negotiated.
    """

    def test_refusedHeaderThenNegotiation(self) -> None:
        """
        A stream refused with C{host-unknown} does not start TLS,
        authenticate or bind when the peer goes on as if it had been
        accepted.
        """
        from twisted.words.protocols.jabber.xmlstream import STREAM_AUTHD_EVENT

        flights = list(_negotiated("receiving"))
        flights[0] = flights[0].replace(b"to='example.net'", b"to='elsewhere.example'")
        stream = StreamRun("receiving", self.patch)
        authenticated: list[object] = []
        stream.xs.addObserver(STREAM_AUTHD_EVENT, authenticated.append)
        stream.feedAll(flights)
        self.assertIsNone(stream.transport.tlsOptions)
        self.assertEqual(authenticated, [])
        self.assertEqual(len(stream.router.table), 0)
        self.assertEqual(stream.finish().elements, [("stream:error", "host-unknown")])

    def test_peerStreamErrorThenNegotiation(self) -> None:
        """
        After the peer's own stream error, the rest of its read (a
        handshake, an auth, a bind) is not negotiated (found by atheris).
        """
        for side in ("accept", "receiving"):
            flights = list(_negotiated(side))
            flights[1] = b"<stream:error/>" + flights[1]
            stream = StreamRun(side, self.patch)
            stream.feedAll(flights)
            self.assertEqual(stream.lateAuth, [])
            self.assertEqual(len(stream.router.table), 0)
            stream.finish()

    def test_refusedStanzaThenNegotiation(self) -> None:
        """
        After C{not-authorized} for an early stanza, the rest of the
        negotiation is dropped too.
        """
        flights = list(_negotiated("receiving"))
        flights[0] = flights[0].replace(b"<starttls", b"<message/><starttls")
        stream = StreamRun("receiving", self.patch)
        stream.feedAll(flights)
        self.assertIsNone(stream.transport.tlsOptions)
        self.assertEqual(len(stream.router.table), 0)
        self.assertEqual(stream.finish().elements, [("features", None), ("stream:error", "not-authorized")])


class SplitTests(FuzzTestCase):
    """
    However the bytes of a negotiation are cut into reads, the outcome is
    the same.
    """

    def assertSplitInvariant(self, side: str) -> None:
        flights = TRANSCRIPTS[side]
        expected = self.check(side, flights)
        runs = 0
        for n, flight in enumerate(flights):
            for cut in range(1, len(flight)):
                chunks = list(flights[:n]) + [flight[:cut], flight[cut:]] + list(flights[n + 1 :])
                self.assertEqual(self.check(side, chunks), expected, (n, cut))
                runs += 1
        bytewise = [flight[i : i + 1] for flight in flights for i in range(len(flight))]
        # One byte per read merges nothing, but a restart drops the rest of
        # a read only: with one byte per read there is none.
        self.assertEqual(self.check(side, bytewise), expected)
        self.assertEqual(runs, sum(len(f) - 1 for f in flights))

    def test_receiving(self) -> None:
        """
        The receiving side, cut at every byte boundary and byte by byte.
        """
        self.assertSplitInvariant("receiving")

    def test_accept(self) -> None:
        """
        The XEP-0114 side, cut at every byte boundary and byte by byte.
        """
        self.assertSplitInvariant("accept")

    def test_initiating(self) -> None:
        """
        The initiating side, cut at every byte boundary and byte by byte.
        """
        self.assertSplitInvariant("initiating")


class MutationTests(FuzzTestCase):
    """
    Mutated negotiations, cut into random reads, end in a stream error or
    a clean close on every side.
    """

    @FUZZ
    @given(ops=_ops, cuts=_cuts)
    def test_receiving(self, ops: Any, cuts: Any) -> None:
        """
        The receiving side (XEP-0225 with the router's bind and routing).
        """
        self.check("receiving", split(mutate(TRANSCRIPTS["receiving"], ops), cuts))

    @FUZZ
    @given(ops=_ops, cuts=_cuts)
    def test_accept(self, ops: Any, cuts: Any) -> None:
        """
        The XEP-0114 receiving side.
        """
        self.check("accept", split(mutate(TRANSCRIPTS["accept"], ops), cuts))

    @FUZZ
    @given(ops=_ops, cuts=_cuts)
    def test_initiating(self, ops: Any, cuts: Any) -> None:
        """
        The initiating side, fed a mutated server.
        """
        self.check("initiating", split(mutate(TRANSCRIPTS["initiating"], ops), cuts))


class RandomXMLTests(FuzzTestCase):
    """
    Random elements and random bytes, before and after negotiation.
    """

    @FUZZ
    @given(side=st.sampled_from(SIDES), stage=st.integers(0, 2), elements=st.lists(_element(), max_size=5))
    def test_elements(self, side: str, stage: int, elements: list[bytes]) -> None:
        """
        Random well-formed elements after the first C{stage} flights.
        """
        flights = TRANSCRIPTS[side]
        prefix = list(flights[: min(stage + 1, len(flights) - 1)])
        if side == "receiving" and stage == 2:
            prefix[-1] = flights[2].split(b"<message")[0]
        self.check(side, prefix + [b"".join(elements)])

    @FUZZ
    @given(side=st.sampled_from(SIDES), stage=st.integers(0, 2), junk=st.binary(max_size=300))
    def test_bytes(self, side: str, stage: int, junk: bytes) -> None:
        """
        Random bytes after the first C{stage} flights.
        """
        flights = TRANSCRIPTS[side]
        self.check(side, list(flights[: min(stage, len(flights) - 1)]) + [junk])


def _negotiated(side: str) -> list[bytes]:
    """
    The flights that negotiate C{side} and leave its stream open.
    """
    flights = list(TRANSCRIPTS[side])
    last = flights[-1]
    flights[-1] = last[: last.find(b"<message")]
    return flights


BILLION_LAUGHS = (
    b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    + b"".join(
        b"<!ENTITY lol%d '%s'>" % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]><stream:stream>&lol9;"
)
QUADRATIC = (
    b"<?xml version='1.0'?><!DOCTYPE kaboom [<!ENTITY a '"
    + b"a" * 50000
    + b"'>]><stream:stream>"
    + b"&a;" * 1000
)
XXE = (
    b"<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
    b"<stream:stream>&xxe;"
)
PARAMETER_ENTITY = (
    b"<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY % pe SYSTEM 'http://192.0.2.1/x.dtd'> %pe;]>"
)
EXTERNAL_DTD = b"<?xml version='1.0'?><!DOCTYPE stream SYSTEM 'http://192.0.2.1/x.dtd'>"


class AttackTests(FuzzTestCase):
    """
    Known attacks get their stream error on every side, before and after
    negotiation.
    """

    def assertCondition(self, side: str, chunks: Sequence[bytes], condition: str) -> None:
        outcome = self.check(side, chunks)
        self.assertTrue(outcome.disconnected)
        self.assertEqual(outcome.elements[-1:], [("stream:error", condition)])

    def assertEverySide(self, data: bytes, condition: str, prolog: bool = False) -> None:
        """
        C{data} instead of the first flight; if not C{prolog}, also after
        negotiation (the initiating side sends no stream errors for a bad
        server: it closes).
        """
        for side in ("receiving", "accept"):
            if prolog:
                self.assertCondition(side, [data], condition)
            else:
                header = TRANSCRIPTS[side][0].split(b"<starttls")[0]
                self.assertCondition(side, [header + data], condition)
                self.assertCondition(side, [header, data], condition)
                self.assertCondition(side, _negotiated(side) + [data], condition)

    def test_billionLaughs(self) -> None:
        """
        An entity expansion bomb in a DTD is C{restricted-xml}.
        """
        self.assertEverySide(BILLION_LAUGHS, "restricted-xml", prolog=True)

    def test_quadraticBlowup(self) -> None:
        """
        One large entity referenced many times is C{restricted-xml} (the DTD
        is refused before any reference is expanded).
        """
        self.assertEverySide(QUADRATIC, "restricted-xml", prolog=True)

    def test_externalEntities(self) -> None:
        """
        External entities, parameter entities and an external DTD are
        C{restricted-xml}; nothing is fetched.
        """
        for data in (XXE, PARAMETER_ENTITY, EXTERNAL_DTD):
            self.assertEverySide(data, "restricted-xml", prolog=True)

    def test_undefinedEntity(self) -> None:
        """
        A reference to an entity that is not one of the five predefined is
        C{restricted-xml}.
        """
        self.assertEverySide(b"<message>&lol9;</message>", "restricted-xml")

    def test_commentAndProcessingInstruction(self) -> None:
        """
        Comments and processing instructions are C{restricted-xml}.
        """
        self.assertEverySide(b"<message><!-- x --></message>", "restricted-xml")
        self.assertEverySide(b"<message><?pi x?></message>", "restricted-xml")

    def test_deepNesting(self) -> None:
        """
        Nesting that goes over the stanza limit is C{policy-violation},
        before it is buffered.
        """
        n = MAX_STANZA // 7 + 1
        self.assertEverySide(b"<message>" + b"<a>" * n + b"</a>" * n + b"</message>", "policy-violation")

    def test_hugeAttribute(self) -> None:
        """
        A huge attribute, in the header or in a stanza, is
        C{policy-violation}.
        """
        big = b"x" * (4 * MAX_STANZA)
        self.assertEverySide(b"<stream:stream a='" + big + b"'>", "policy-violation", prolog=True)
        self.assertEverySide(b"<message a='" + big + b"'/>", "policy-violation")

    def test_invalidUTF8(self) -> None:
        """
        Bytes that are not UTF-8, UTF-16 surrogates encoded in UTF-8, and
        NUL bytes are C{not-well-formed}.
        """
        for data in (b"<message>\xff</message>", b"<message>\xed\xa0\x80</message>", b"<message>\x00</message>"):
            self.assertEverySide(data, "not-well-formed")
        self.assertEverySide(b"\x00<stream:stream>", "not-well-formed", prolog=True)

    def test_halfOpen(self) -> None:
        """
        A peer that sends a header (or part of one, or a partial stanza)
        and nothing more is closed with C{connection-timeout}.
        """
        for side in ("receiving", "accept"):
            header = TRANSCRIPTS[side][0]
            for cut in (0, 10, len(header.split(b"<starttls")[0])):
                self.assertCondition(side, [header[:cut]], "connection-timeout")

    def test_initiatingRefusesBombs(self) -> None:
        """
        The initiating side closes a server that sends a bomb, a DTD or
        bad bytes.
        """
        for data in (BILLION_LAUGHS, QUADRATIC, XXE, b"\xff", b"<stream:stream a='" + b"x" * 5 * MAX_STANZA):
            outcome = self.check("initiating", [data])
            self.assertFalse(outcome.negotiated)
            self.assertTrue(outcome.disconnected)


class MemoryTests(FuzzTestCase):
    """
    Whatever a peer sends, a stream holds memory in proportion to the
    stanza limit, not to what was sent.
    """

    def assertBounded(self, side: str, prefix: Sequence[bytes], head: bytes, body: bytes, total: int) -> int:
        stream = StreamRun(side, self.patch)
        stream.feedAll(prefix)
        # Drop what the stream writes from now on: a peer that reads.
        stream._collect = stream.transport.clear  # type: ignore[method-assign]
        tracemalloc.start()
        try:
            stream.feed(head)
            sent = len(head)
            while sent < total and not stream.transport.disconnecting:
                stream.feed(body)
                sent += len(body)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        stream.finish()
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertLess(peak, 64 * MAX_STANZA + 256 * 1024)
        return peak

    def test_endlessAttribute(self) -> None:
        """
        An attribute that never ends.
        """
        for side in ("receiving", "accept"):
            self.assertBounded(side, _negotiated(side), b"<message a='", b"x" * 65536, 8 << 20)

    def test_endlessText(self) -> None:
        """
        Character data that never ends, in a stanza.
        """
        for side in ("receiving", "accept"):
            self.assertBounded(side, _negotiated(side), b"<message><body>", b"y" * 65536, 8 << 20)

    def test_manyStanzas(self) -> None:
        """
        Many small stanzas, each bounced: the router answers each and
        keeps nothing (the transport here buffers what is written; the
        clear between reads stands for a peer that reads).
        """
        stanza = b"<iq type='get' id='q' from='a.%s' to='x.nowhere.net'><query xmlns='urn:x'/></iq>" % (
            IDENTITY.encode(),
        )
        self.assertBounded("receiving", _negotiated("receiving"), b"", stanza * 100, 1 << 20)
