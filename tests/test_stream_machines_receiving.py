# -*- test-case-name: tests.test_stream_machines_receiving -*-
"""
The table test of L{xmppcomp.stream.receivingmachine.ReceivingMachine}:
for every (state, input) of its table, the actions it asks for and the
state it goes to, and every condition it refuses a stream with. No stream,
no transport: the IO records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish
from zope.interface import implementer

from xmppcomp.interfaces import IReceivingFeature
from xmppcomp.ns import NS_CLIENT, NS_SASL, NS_TLS
from xmppcomp.stream.features import markRequired
from xmppcomp.stream.limits import AuthFailureLimiter
from xmppcomp.stream.machine import OurHeader
from xmppcomp.stream.receiving import ReceivingMachine, ReceivingPolicy
from xmppcomp.stream.sasl import MemoryCredentialStore, PlainInitiator, SASLInitiator

from .machinehelpers import RecordingIO, parse, parseHeader

DOMAIN = "example.net"
IDENTITY = "comp.example.net"
SECRET = "correct horse battery staple"
STORE = MemoryCredentialStore()
STORE.add(IDENTITY, SECRET)
TEST_NS = "urn:xmppcomp:test:feature"

GOOD_HEADER = (
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    " to='example.net' from='comp.example.net' version='1.0'>"
)
STARTTLS = "<starttls xmlns='%s'/>" % (NS_TLS,)
STANZA = "<message to='x@example.net'><body>hi</body></message>"
BOGUS = "<bogus xmlns='urn:bogus'/>"
GO = "<iq type='set' id='g1'><go xmlns='%s'/></iq>" % (TEST_NS,)
SASL_FEATURES_KEY = ("sasl", NS_CLIENT, ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"), ())

#: The transitions the tests below take: (state, input, behaviour, next).
TAKEN: set[tuple[str, str, str, str]] = set()


def transition(
    state: str, input: str, behaviour: str, target: str
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """
    Mark a test as one that takes a transition of the table (and checks
    that it does).
    """

    def mark(test: Callable[..., None]) -> Callable[..., None]:
        TAKEN.add((state, input, behaviour, target))
        return test

    return mark


class ReceivingRecorder(RecordingIO):
    """
    A L{RecordingIO} with the receiving side's facts and actions
    (L{ReceivingIO<xmppcomp.stream.receivingmachine.ReceivingIO>}):

      - C{("features", key, [xml, ...])} for the features asked for;
        the serialisation returned is C{"<features:N/>"}, N counting;
      - stream ids are C{"id1"}, C{"id2"}...;
      - with C{deferring} set, C{afterRead} records C{("afterRead",)} and
        keeps the call in L{later} instead of calling at once (inside a
        read).

    @ivar encryptedNow: what C{encrypted()} returns.
    """

    def __init__(self, encrypted: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encryptedNow = encrypted
        self.ids = 0
        self.made = 0
        self.deferring = False
        self.later: list[tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]] = []

    def newStreamId(self) -> str:
        self.ids += 1
        return "id%d" % (self.ids,)

    def encrypted(self) -> bool:
        return self.encryptedNow

    def channelBinding(self) -> None:
        return None

    def peerIdentities(self) -> frozenset[str]:
        return frozenset()

    def featuresXml(
        self, key: tuple[object, ...] | None, build: Callable[[], list[domish.Element]]
    ) -> str:
        self.made += 1
        self.actions.append(("features", key, [e.toXml() for e in build()]))
        return "<features:%d/>" % (self.made,)

    def afterRead(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        if not self.deferring:
            super().afterRead(f, *args, **kwargs)
            return
        self.actions.append(("afterRead",))
        self.later.append((f, args, kwargs))

    def endRead(self) -> None:
        """
        The read is handled: run what C{afterRead} kept.
        """
        later, self.later = self.later, []
        self.deferring = False
        for f, args, kwargs in later:
            f(*args, **kwargs)


@implementer(IReceivingFeature)
@attrs.define
class CountedFeature:
    """
    A required post-SASL feature, negotiated by C{needed} IQs carrying
    C{<go xmlns=TEST_NS/>}, each answered through the session.
    """

    needed: int = 1
    taken: int = 0

    def featureElement(self, session: Any) -> domish.Element | None:
        if self.taken >= self.needed:
            return None
        return markRequired(domish.Element((TEST_NS, "go")))

    def isRequired(self, session: Any) -> bool:
        return self.taken < self.needed

    def handleElement(self, session: Any, element: domish.Element) -> bool:
        child = element.firstChildElement() if element.name == "iq" else None
        if child is None or child.uri != TEST_NS:
            return False
        self.taken += 1
        session.send("<answer%d/>" % (self.taken,))
        return True


@attrs.define
class Harness:
    machine: ReceivingMachine
    io: ReceivingRecorder
    feature: CountedFeature
    policy: ReceivingPolicy


def harness(
    needed: int = 1, encrypted: bool = False, limiter: AuthFailureLimiter | None = None, **policyArgs: Any
) -> Harness:
    """
    A new machine (not connected yet) with one L{CountedFeature}.
    """
    feature = CountedFeature(needed)
    policyArgs.setdefault("domains", {DOMAIN})
    policyArgs.setdefault("credentials", STORE)
    policyArgs.setdefault("tlsOptions", object())
    policyArgs.setdefault("features", [feature])
    policyArgs.setdefault("authFailures", limiter)
    policy = ReceivingPolicy(**policyArgs)
    io = ReceivingRecorder(encrypted=encrypted)
    return Harness(ReceivingMachine(io, policy, io), io, feature, policy)


def plainAuth(secret: str = SECRET) -> domish.Element:
    return SASLInitiator(PlainInitiator(IDENTITY, secret)).start()


def inTLS(**kwargs: Any) -> Harness:
    h = harness(**kwargs)
    h.machine.connected()
    h.io.take()
    return h


def greetedTLS(**kwargs: Any) -> Harness:
    h = inTLS(**kwargs)
    h.machine.header(parseHeader(GOOD_HEADER))
    h.io.take()
    return h


def inSASL(**kwargs: Any) -> Harness:
    h = greetedTLS(**kwargs)
    h.machine.element(parse(STARTTLS))
    h.machine.header(parseHeader(GOOD_HEADER))
    h.io.take()
    assert h.machine.state == "sasl"
    return h


def inFeatures(**kwargs: Any) -> Harness:
    h = inSASL(**kwargs)
    h.machine.element(plainAuth())
    h.machine.header(parseHeader(GOOD_HEADER))
    h.io.take()
    assert h.machine.state == "features"
    return h


def inCompleting(**kwargs: Any) -> Harness:
    h = inFeatures(**kwargs)
    h.io.deferring = True
    h.machine.element(parse(GO))
    assert h.machine.state == "completing"
    h.io.take()
    return h


def inComplete(**kwargs: Any) -> Harness:
    h = inCompleting(**kwargs)
    h.io.endRead()
    h.io.take()
    assert h.machine.state == "complete"
    return h


def inRefused(**kwargs: Any) -> Harness:
    h = greetedTLS(**kwargs)
    h.machine.element(parse(STANZA))
    h.io.take()
    assert h.machine.state == "refused"
    return h


SETUPS: dict[str, Callable[..., Harness]] = {
    "tls": greetedTLS,
    "sasl": inSASL,
    "features": inFeatures,
    "completing": inCompleting,
    "complete": inComplete,
    "refused": inRefused,
}


def refusal(condition: str, text: str | None) -> list[tuple[Any, ...]]:
    """
    The actions of a refusal.
    """
    return [("cancelTimer",), ("countRefusal", condition), ("refuse", condition, text)]


class MachineTestCase(SynchronousTestCase):
    def assertState(self, h: Harness, state: str) -> None:
        self.assertEqual(h.machine.state, state)


class ConnectedTests(MachineTestCase):
    """
    C{connected}, in the initial state.
    """

    @transition("tls", "connected", "open", "tls")
    def test_startTLSFirst(self) -> None:
        """
        With TLS options, on a plain connection: the timeout starts,
        STARTTLS comes first.
        """
        h = harness(negotiationTimeout=7)
        h.machine.connected()
        self.assertEqual(h.io.take(), [("startTimer", 7)])
        self.assertState(h, "tls")
        self.assertFalse(h.machine.tlsActive)

    @transition("tls", "connected", "open", "sasl")
    def test_saslFirst(self) -> None:
        """
        On a TLS listener's connection, or with plaintext allowed (and no
        TLS options), SASL comes first.
        """
        h = harness(encrypted=True)
        h.machine.connected()
        self.assertEqual(h.io.take(), [("startTimer", 30.0)])
        self.assertState(h, "sasl")
        self.assertTrue(h.machine.tlsActive)
        h = harness(tlsOptions=None, allowPlaintext=True)
        h.machine.connected()
        self.assertEqual(h.io.take(), [("startTimer", 30.0)])
        self.assertState(h, "sasl")
        self.assertFalse(h.machine.tlsActive)

    @transition("tls", "connected", "open", "refused")
    def test_blockedSource(self) -> None:
        """
        A source that failed too often is refused with
        C{policy-violation} at once, under a header from our first domain;
        no timer starts.
        """
        limiter = AuthFailureLimiter(maxFailures=1, window=60)
        limiter.failed("1.2.3.4", 0.0)
        h = harness(limiter=limiter, domains={"b.example", "a.example"})
        h.io.clock = 10.0
        h.machine.connected()
        text = "too many failed authentications from this address; retry in 51 seconds"
        self.assertEqual(
            h.io.take(),
            [("describe", OurHeader(NS_CLIENT, (1, 0), ours="a.example"))] + refusal("policy-violation", text),
        )
        self.assertState(h, "refused")


class HeaderTests(MachineTestCase):
    """
    C{header}: answered with ours and the state's features, or refused.
    """

    @transition("tls", "header", "greet", "tls")
    def test_tls(self) -> None:
        """
        Before TLS: our header (a fresh id, from the domain addressed, to
        the peer) and the required STARTTLS, keyed for remembering.
        """
        h = inTLS()
        h.machine.header(parseHeader(GOOD_HEADER))
        self.assertEqual(
            h.io.take(),
            [
                ("sendHeader", OurHeader(NS_CLIENT, (1, 0), DOMAIN, IDENTITY, "id1")),
                (
                    "features",
                    ("tls", NS_CLIENT),
                    ["<starttls xmlns='%s'><required/></starttls>" % (NS_TLS,)],
                ),
                ("send", "<features:1/>"),
            ],
        )
        self.assertState(h, "tls")

    @transition("sasl", "header", "greet", "sasl")
    def test_sasl(self) -> None:
        """
        After TLS: a new id, and the SASL mechanisms (PLAIN inside TLS),
        keyed by what is offered.
        """
        h = greetedTLS()
        h.machine.element(parse(STARTTLS))
        h.io.take()
        h.machine.header(parseHeader(GOOD_HEADER))
        actions = h.io.take()
        self.assertEqual(actions[0], ("sendHeader", OurHeader(NS_CLIENT, (1, 0), DOMAIN, IDENTITY, "id2")))
        self.assertEqual(actions[1][:2], ("features", SASL_FEATURES_KEY))
        self.assertIn("<mechanism>PLAIN</mechanism>", actions[1][2][0])
        self.assertEqual(actions[2:], [("send", "<features:2/>")])
        self.assertState(h, "sasl")
        assert h.machine.sasl is not None
        self.assertEqual(h.machine.sasl.offeredMechanisms(), list(SASL_FEATURES_KEY[2]))

    @transition("features", "header", "greet", "features")
    def test_featuresMadeAhead(self) -> None:
        """
        After SASL: addressed to the authenticated identity, and the
        features made ahead (when SASL succeeded) are sent, not made
        again; one is still required.
        """
        h = inSASL()
        h.machine.element(plainAuth())
        h.io.take()
        h.machine.header(parseHeader(GOOD_HEADER.replace("from='comp.example.net'", "")))
        self.assertEqual(
            h.io.take(),
            [
                ("sendHeader", OurHeader(NS_CLIENT, (1, 0), DOMAIN, IDENTITY, "id3")),
                ("send", "<features:3/>"),
            ],
        )
        self.assertState(h, "features")

    @transition("features", "header", "greet", "complete")
    def test_nothingRequired(self) -> None:
        """
        After SASL with no feature required: complete (at once outside a
        read).
        """
        h = inSASL(features=[])
        h.machine.element(plainAuth())
        h.io.take()
        h.machine.header(parseHeader(GOOD_HEADER))
        actions = h.io.take()
        self.assertEqual(actions[1], ("send", "<features:3/>"))
        self.assertEqual(
            actions[2:], [("afterRead",), ("cancelTimer",), ("afterRead",), ("succeeded", None)]
        )
        self.assertState(h, "complete")

    @transition("features", "header", "greet", "completing")
    def test_nothingRequiredInRead(self) -> None:
        """
        Inside a read, completion waits for the read's end.
        """
        h = inSASL(features=[])
        h.machine.element(plainAuth())
        h.io.deferring = True
        h.machine.header(parseHeader(GOOD_HEADER))
        self.assertEqual(h.io.take()[-1:], [("afterRead",)])
        self.assertState(h, "completing")
        h.io.endRead()
        self.assertState(h, "complete")

    def assertBadHeader(self, state: str, xml: str, condition: str) -> Harness:
        h = {"tls": inTLS, "sasl": greetedTLS, "features": inSASL}[state]()
        if state == "sasl":
            h.machine.element(parse(STARTTLS))
        elif state == "features":
            h.machine.element(plainAuth())
        h.io.take()
        self.assertState(h, state)
        h.machine.header(parseHeader(xml))
        actions = h.io.take()
        self.assertEqual(actions[1:], refusal(condition, None))
        self.assertState(h, "refused")
        return h

    @transition("tls", "header", "greet", "refused")
    def test_badHeaders(self) -> None:
        """
        Each bad header gets its stream error, under a header from our
        first domain (before any header) with a fresh id.
        """
        for xml, condition in [
            (GOOD_HEADER.replace("example.net'", "elsewhere.example'", 1), "host-unknown"),
            (GOOD_HEADER.replace(" to='example.net'", ""), "host-unknown"),
            (GOOD_HEADER.replace("jabber:client", "jabber:component:accept"), "invalid-namespace"),
            (GOOD_HEADER.replace(" version='1.0'", ""), "unsupported-version"),
            (GOOD_HEADER.replace("version='1.0'", "version='2.0'"), "unsupported-version"),
            (GOOD_HEADER.replace("version='1.0'", "version='one'"), "bad-format"),
            (GOOD_HEADER.replace("xmlns:stream=", "xmlns:s=").replace("stream:stream", "s:stream"), "bad-namespace-prefix"),
            (GOOD_HEADER.replace("from='comp.example.net'", "from='a@'"), "invalid-from"),
        ]:
            h = self.assertBadHeader("tls", xml, condition)
        self.assertEqual(h.io.actions, [])

    @transition("sasl", "header", "greet", "refused")
    def test_badHeaderAfterTLS(self) -> None:
        """
        A bad header after TLS is refused under our header of the stream
        before (its names, a fresh id).
        """
        h = greetedTLS()
        h.machine.element(parse(STARTTLS))
        h.io.take()
        h.machine.header(parseHeader(GOOD_HEADER.replace(" version='1.0'", "")))
        self.assertEqual(
            h.io.take(),
            [("describe", OurHeader(NS_CLIENT, (1, 0), DOMAIN, IDENTITY, "id2"))]
            + refusal("unsupported-version", None),
        )
        self.assertState(h, "refused")

    @transition("features", "header", "greet", "refused")
    def test_badHeaderAfterSASL(self) -> None:
        """
        A bad header after SASL is refused too.
        """
        self.assertBadHeader("features", GOOD_HEADER.replace("jabber:client", "urn:other"), "invalid-namespace")


class TLSTests(MachineTestCase):
    """
    C{element} in C{tls}.
    """

    @transition("tls", "element", "expectStartTLS", "sasl")
    def test_startTLS(self) -> None:
        """
        C{<starttls/>}: C{<proceed/>}, then TLS starts.
        """
        h = greetedTLS()
        self.assertTrue(h.machine.element(parse(STARTTLS)))
        self.assertEqual(h.io.take(), [("send", "<proceed xmlns='%s'/>" % (NS_TLS,)), ("startTLS",)])
        self.assertState(h, "sasl")
        self.assertTrue(h.machine.tlsActive)

    @transition("tls", "element", "expectStartTLS", "tls")
    def test_authBeforeTLS(self) -> None:
        """
        C{<auth/>} before TLS gets the SASL failure
        C{encryption-required}; the stream stays. Once the stream ended,
        elements are dropped.
        """
        h = greetedTLS()
        self.assertTrue(h.machine.element(plainAuth()))
        (action,) = h.io.take()
        self.assertEqual(action[0], "send")
        self.assertIn("<encryption-required/>", action[1])
        self.assertState(h, "tls")
        h.io.ended = True
        self.assertTrue(h.machine.element(parse(STANZA)))
        self.assertEqual(h.io.take(), [])
        self.assertState(h, "tls")

    @transition("tls", "element", "expectStartTLS", "refused")
    def test_refused(self) -> None:
        """
        A stanza gets C{not-authorized}; another element (SASL but
        C{<auth/>} included) C{unsupported-stanza-type}.
        """
        h = greetedTLS()
        self.assertTrue(h.machine.element(parse(STANZA)))
        self.assertEqual(h.io.take(), refusal("not-authorized", "stream negotiation is not complete"))
        self.assertState(h, "refused")
        for xml, name in [(BOGUS, "{urn:bogus}bogus"), ("<abort xmlns='%s'/>" % (NS_SASL,), "{%s}abort" % (NS_SASL,))]:
            h = greetedTLS()
            self.assertTrue(h.machine.element(parse(xml)))
            self.assertEqual(
                h.io.take(),
                refusal("unsupported-stanza-type", "unexpected %s during stream negotiation" % (name,)),
            )
            self.assertState(h, "refused")


class SASLTests(MachineTestCase):
    """
    C{element} in C{sasl}.
    """

    @transition("sasl", "element", "exchange", "features")
    def test_success(self) -> None:
        """
        A successful exchange: the success, the parser reset, and, once the
        read is handled, the features of the next stream made ahead.
        """
        h = inSASL()
        h.io.deferring = True
        self.assertTrue(h.machine.element(plainAuth()))
        self.assertEqual(
            h.io.take(),
            [("send", "<success xmlns='%s'/>" % (NS_SASL,)), ("resetParser",), ("afterRead",)],
        )
        self.assertState(h, "features")
        self.assertEqual((h.machine.identity, h.machine.mechanism), (IDENTITY, "PLAIN"))
        h.io.endRead()
        self.assertEqual(h.io.take(), [("features", None, ["<go xmlns='%s'><required/></go>" % (TEST_NS,)])])
        self.assertEqual(h.machine.ahead, "<features:3/>")

    @transition("sasl", "element", "exchange", "sasl")
    def test_failure(self) -> None:
        """
        A failed attempt is answered, counted (per source too) and may be
        tried again; an abort is not counted against the source. Once the
        stream ended, elements are dropped.
        """
        limiter = AuthFailureLimiter(maxFailures=5)
        h = inSASL(limiter=limiter)
        self.assertTrue(h.machine.element(plainAuth("wrong")))
        actions = h.io.take()
        self.assertEqual(actions[0][0], "send")
        self.assertIn("<not-authorized/>", actions[0][1])
        self.assertEqual(actions[1:], [("countRefusal", "not-authorized")])
        self.assertEqual(limiter.retryAfter("1.2.3.4", 0), 0)
        self.assertEqual(len(limiter), 1)
        self.assertState(h, "sasl")
        h.io.ended = True
        self.assertTrue(h.machine.element(plainAuth()))
        self.assertEqual(h.io.take(), [])
        self.assertState(h, "sasl")

    @transition("sasl", "element", "exchange", "refused")
    def test_refused(self) -> None:
        """
        TLS again is a C{policy-violation}; so is the last failure allowed,
        and an C{<auth/>} from a source blocked meanwhile; stanzas and
        other elements as before SASL.
        """
        h = inSASL()
        self.assertTrue(h.machine.element(parse(STARTTLS)))
        self.assertEqual(h.io.take(), refusal("policy-violation", "TLS cannot be negotiated at this point"))
        self.assertState(h, "refused")

        h = inSASL(maxAuthAttempts=1)
        h.machine.element(plainAuth("wrong"))
        self.assertEqual(
            h.io.take()[1:],
            [("countRefusal", "not-authorized")]
            + refusal("policy-violation", "too many failed authentication attempts"),
        )
        self.assertState(h, "refused")

        limiter = AuthFailureLimiter(maxFailures=1)
        h = inSASL(limiter=limiter)
        limiter.failed("1.2.3.4", 0.0)
        h.machine.element(plainAuth())
        self.assertEqual(
            h.io.take(),
            refusal("policy-violation", "too many failed authentications from this address; retry in 61 seconds"),
        )
        self.assertState(h, "refused")

        h = inSASL()
        h.machine.element(parse(STANZA))
        self.assertEqual(h.io.take(), refusal("not-authorized", "stream negotiation is not complete"))
        h = inSASL()
        h.machine.element(parse(BOGUS))
        self.assertEqual(
            h.io.take(),
            refusal("unsupported-stanza-type", "unexpected {urn:bogus}bogus during stream negotiation"),
        )
        self.assertState(h, "refused")


class FeaturesTests(MachineTestCase):
    """
    C{element}, C{prepareFeatures} and C{checkComplete} in C{features}.
    """

    @transition("features", "element", "offerToFeatures", "features")
    def test_stillRequired(self) -> None:
        """
        A feature takes the element and answers it; still required, so
        negotiation goes on. Once the stream ended, elements are dropped.
        """
        h = inFeatures(needed=2)
        self.assertTrue(h.machine.element(parse(GO)))
        self.assertEqual(h.io.take(), [("send", "<answer1/>")])
        self.assertState(h, "features")
        h.io.ended = True
        self.assertTrue(h.machine.element(parse(GO)))
        self.assertEqual(h.io.take(), [])
        self.assertEqual(h.feature.taken, 1)
        self.assertState(h, "features")

    @transition("features", "element", "offerToFeatures", "completing")
    def test_completing(self) -> None:
        """
        Nothing required any more, inside a read: complete once it is
        handled.
        """
        h = inFeatures()
        h.io.deferring = True
        self.assertTrue(h.machine.element(parse(GO)))
        self.assertEqual(h.io.take(), [("send", "<answer1/>"), ("afterRead",)])
        self.assertState(h, "completing")

    @transition("features", "element", "offerToFeatures", "complete")
    def test_complete(self) -> None:
        """
        Nothing required any more, outside a read: complete at once; the
        timer is cancelled, the log line waits for the read's end.
        """
        h = inFeatures()
        h.io.clock = 2.5
        self.assertTrue(h.machine.element(parse(GO)))
        self.assertEqual(
            h.io.take(),
            [("send", "<answer1/>"), ("afterRead",), ("cancelTimer",), ("afterRead",), ("succeeded", None)],
        )
        self.assertState(h, "complete")

    @transition("features", "element", "offerToFeatures", "refused")
    def test_refused(self) -> None:
        """
        What no feature takes is refused as before SASL.
        """
        h = inFeatures()
        self.assertTrue(h.machine.element(parse(STANZA)))
        self.assertEqual(h.io.take(), refusal("not-authorized", "stream negotiation is not complete"))
        self.assertState(h, "refused")
        h = inFeatures()
        h.machine.element(parse(BOGUS))
        self.assertEqual(
            h.io.take(),
            refusal("unsupported-stanza-type", "unexpected {urn:bogus}bogus during stream negotiation"),
        )

    @transition("features", "prepareFeatures", "prepare", "features")
    def test_prepare(self) -> None:
        """
        The features are made ahead once; made again never.
        """
        h = inSASL()
        h.io.deferring = True
        h.machine.element(plainAuth())
        h.io.take()
        h.machine.prepareFeatures()
        self.assertEqual(h.io.take(), [("features", None, ["<go xmlns='%s'><required/></go>" % (TEST_NS,)])])
        h.machine.prepareFeatures()
        self.assertEqual(h.io.take(), [])
        self.assertEqual(h.machine.ahead, "<features:3/>")
        self.assertState(h, "features")

    @transition("features", "checkComplete", "checkRequired", "features")
    def test_checkStillRequired(self) -> None:
        """
        A feature still required: nothing happens.
        """
        h = inFeatures()
        h.machine.checkComplete()
        self.assertEqual(h.io.take(), [])
        self.assertState(h, "features")

    @transition("features", "checkComplete", "checkRequired", "completing")
    @transition("features", "checkComplete", "checkRequired", "complete")
    def test_checkDone(self) -> None:
        """
        No feature required any more (it changed meanwhile): complete,
        once the read is handled.
        """
        h = inFeatures()
        h.feature.taken = 1
        h.io.deferring = True
        h.machine.checkComplete()
        self.assertEqual(h.io.take(), [("afterRead",)])
        self.assertState(h, "completing")
        h = inFeatures()
        h.feature.taken = 1
        h.machine.checkComplete()
        self.assertEqual(h.io.take()[-1], ("succeeded", None))
        self.assertState(h, "complete")


class CompletingTests(MachineTestCase):
    """
    C{element} and C{finish} in C{completing}.
    """

    @transition("completing", "element", "offerOrComplete", "completing")
    def test_moreAnswered(self) -> None:
        """
        More elements a feature takes are answered here (and so is
        nothing once the stream ended).
        """
        h = inCompleting(needed=1)
        self.assertTrue(h.machine.element(parse(GO)))
        self.assertEqual(h.io.take(), [("send", "<answer2/>")])
        self.assertState(h, "completing")
        h.io.ended = True
        self.assertTrue(h.machine.element(parse(STANZA)))
        self.assertEqual(h.io.take(), [])
        self.assertState(h, "completing")

    @transition("completing", "element", "offerOrComplete", "complete")
    def test_stanzaCompletes(self) -> None:
        """
        Anything else completes negotiation first, then goes where a
        negotiated stream's elements go.
        """
        h = inCompleting()
        self.assertFalse(h.machine.element(parse(STANZA)))
        self.assertEqual(h.io.take(), [("cancelTimer",), ("afterRead",), ("succeeded", None)])
        self.assertState(h, "complete")
        h.io.endRead()
        self.assertEqual(h.io.take(), [])

    @transition("completing", "finish", "complete", "complete")
    def test_finish(self) -> None:
        """
        The read is handled: complete.
        """
        h = inCompleting()
        h.io.endRead()
        self.assertEqual(h.io.take(), [("cancelTimer",), ("afterRead",), ("succeeded", None)])
        self.assertState(h, "complete")


class EndTests(MachineTestCase):
    """
    C{element} once complete or refused, C{timedOut}, C{ended}.
    """

    @transition("complete", "element", "passOn", "complete")
    def test_passOn(self) -> None:
        """
        Once complete, elements are not negotiation's.
        """
        h = inComplete()
        self.assertFalse(h.machine.element(parse(STANZA)))
        self.assertEqual(h.io.take(), [])
        self.assertState(h, "complete")

    @transition("refused", "element", "consume", "refused")
    def test_consume(self) -> None:
        """
        Once refused, whatever comes is dropped: no TLS, no SASL, no
        feature.
        """
        h = inRefused()
        for xml in (STARTTLS, STANZA, GO):
            self.assertTrue(h.machine.element(parse(xml)))
        self.assertTrue(h.machine.element(plainAuth()))
        self.assertEqual(h.io.take(), [])
        self.assertState(h, "refused")
        self.assertEqual(h.feature.taken, 0)

    @transition("tls", "timedOut", "expire", "refused")
    @transition("sasl", "timedOut", "expire", "refused")
    @transition("features", "timedOut", "expire", "refused")
    @transition("completing", "timedOut", "expire", "refused")
    def test_timedOut(self) -> None:
        """
        Negotiation not complete in time: C{connection-timeout}, in every
        negotiating state.
        """
        for state in ("tls", "sasl", "features", "completing"):
            h = SETUPS[state](negotiationTimeout=5)
            h.machine.timedOut()
            self.assertEqual(
                h.io.take(),
                refusal("connection-timeout", "stream negotiation not complete after 5 seconds"),
            )
            self.assertState(h, "refused")

    @transition("tls", "ended", "stop", "tls")
    @transition("sasl", "ended", "stop", "sasl")
    @transition("features", "ended", "stop", "features")
    @transition("completing", "ended", "stop", "completing")
    @transition("complete", "ended", "stop", "complete")
    @transition("refused", "ended", "stop", "refused")
    def test_ended(self) -> None:
        """
        The stream ended: the timer is cancelled, in every state.
        """
        for state, setup in SETUPS.items():
            h = setup()
            h.machine.ended("connection lost")
            self.assertEqual(h.io.take(), [("cancelTimer",)])
            self.assertState(h, state)


#: The (state, input) pairs that do nothing.
IGNORED = [
    (state, input)
    for state in ("tls", "sasl", "features", "completing", "complete", "refused")
    for input in ("prepareFeatures", "checkComplete", "finish", "tlsDone", "timedOut", "header")
    if (state, input)
    not in {
        ("features", "prepareFeatures"),
        ("features", "checkComplete"),
        ("completing", "finish"),
        ("tls", "timedOut"),
        ("sasl", "timedOut"),
        ("features", "timedOut"),
        ("completing", "timedOut"),
        ("tls", "header"),
        ("sasl", "header"),
        ("features", "header"),
    }
]
for _state, _input in IGNORED:
    TAKEN.add((_state, _input, "ignore", _state))


class IgnoredTests(MachineTestCase):
    """
    The inputs that do nothing where they come.
    """

    def test_ignored(self) -> None:
        """
        In each of L{IGNORED}: no action, the same state.
        """
        for state, input in IGNORED:
            h = SETUPS[state]()
            if input == "header":
                h.machine.header(parseHeader(GOOD_HEADER))
            else:
                getattr(h.machine, input)()
            self.assertEqual(h.io.take(), [], (state, input))
            self.assertState(h, state)


class TableTests(SynchronousTestCase):
    """
    The table and the tests agree.
    """

    def test_everyTransitionTaken(self) -> None:
        """
        The tests of this module take each transition of the table, and no
        other.
        """
        self.assertEqual(TAKEN, set(ReceivingMachine.table.transitions()))

    def test_states(self) -> None:
        """
        The states of the receiving negotiation, C{tls} first.
        """
        table = ReceivingMachine.table
        self.assertEqual(table.states, ("tls", "sasl", "features", "completing", "complete", "refused"))
        self.assertEqual(table.initial, "tls")
