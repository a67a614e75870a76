# -*- test-case-name: tests.test_stream_machines_initiating -*-
"""
Table test of the XEP-0225 initiating machine,
L{xmppcomp.stream.initiatingmachine.InitiatingMachine}: for each (state,
input) of its table, the actions a L{RecordingIO} records and the next
state, the machine being driven there by real inputs (the server's
headers, features, C{<proceed/>}, SASL challenges and success). Every
transition of the table is taken by a test below (L{CoverageTests}
checks it), and every failure.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
from scramp import ScramMechanism
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.error import StreamError
from twisted.words.xish import domish
from zope.interface import implementer, provider

from xmppcomp.errors import NegotiationError, SASLFailure, TLSRequiredError
from xmppcomp.interfaces import IInitiatingFeature
from xmppcomp.ns import NS_CLIENT, NS_SASL, NS_SASL_CB, NS_STREAMS, NS_TLS
from xmppcomp.stream.channelbinding import ChannelBindingData
from xmppcomp.stream.initiating import InitiatingPolicy
from xmppcomp.stream.initiatingmachine import (
    InitiatingMachine,
    NegotiationResult,
    OfferMemory,
)
from xmppcomp.stream.machine import OurHeader, Table

from . import machinehelpers
from .machinehelpers import (
    RecordingIO,
    Transition,
    described,
    internetNamesUsedBy,
    parse,
    parseHeader,
    rowsNotTaken,
    transitionsOf,
)

SERVER = "example.net"
IDENTITY = "comp.example.org"
SECRET = "s3cret-of-the-component"
FIRST_ID = "first-stream-id"
TLS_ID = "stream-id-under-tls"
FINAL_ID = "final-stream-id"
TEST_NS = "urn:example:test-feature"
UNKNOWN_NS = "urn:example:unknown-feature"

#: The failure of a required feature offered in the UNKNOWN_NS namespace.
UNKNOWN_REQUIRED = "the server requires stream feature {%s}other, which this component cannot negotiate" % (UNKNOWN_NS,)

#: The failure of an offer of SCRAM-SHA-1 alone, with the default policy.
SCRAM_SHA_1_UNUSABLE = (
    "no usable SASL mechanism: the server offered ['SCRAM-SHA-1'] (SCRAM-SHA-1: not allowed by configuration)"
)

#: Our header, as every test's policy makes it.
OUR_HEADER = OurHeader(NS_CLIENT, (1, 0), ours=IDENTITY, theirs=SERVER)

#: The transitions the tests below take: (table, state, input, behaviour,
#: next state).
TAKEN: set[Transition] = set()

TABLE = InitiatingMachine.table

#: The states before negotiation completes or fails.
NEGOTIATING = ("header", "tls", "sasl", "restarting", "features")


#: Mark a test as taking (state, input, next state) transitions of the table.
takes = functools.partial(machinehelpers.takes, TAKEN, TABLE)


class RecordingInitiatingIO(RecordingIO):
    """
    A L{RecordingIO} with the actions and facts of
    L{InitiatingIO<xmppcomp.stream.initiatingmachine.InitiatingIO>}:

      - C{("disconnect",)}, C{("prepareFeatures",)};
      - C{("callSoon", *args)}: the call is kept in L{soon}, for
        L{runSoon};
      - C{("negotiateFeature", feature, xml)}: the feature and its
        element serialised; if L{answer} is set, it is called at once with
        the feature (to answer as the feature would).

    @ivar binding: what C{channelBinding()} returns.
    @ivar bindingAsked: how many times C{channelBinding()} was called.
    @ivar version: what C{tlsVersion()} returns.
    @ivar sid: what C{streamId()} returns.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.binding: ChannelBindingData | None = None
        self.bindingAsked = 0
        self.version: str | None = "TLSv1.3"
        self.sid: str | None = FINAL_ID
        self.soon: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        self.answer: Callable[[Any], None] | None = None

    def runSoon(self) -> None:
        """
        Run the calls C{callSoon} asked for.
        """
        soon, self.soon = self.soon, []
        for f, args in soon:
            f(*args)

    # Facts.

    def channelBinding(self) -> ChannelBindingData | None:
        self.bindingAsked += 1
        return self.binding

    def tlsVersion(self) -> str | None:
        return self.version

    def streamId(self) -> str | None:
        return self.sid

    # Actions.

    def disconnect(self) -> None:
        self.actions.append(("disconnect",))

    def callSoon(self, f: Callable[..., object], *args: Any) -> None:
        self.actions.append(("callSoon", *args))
        self.soon.append((f, args))

    def prepareFeatures(self) -> None:
        self.actions.append(("prepareFeatures",))

    def negotiateFeature(self, feature: Any, element: domish.Element) -> None:
        self.actions.append(("negotiateFeature", feature, element.toXml()))
        if self.answer is not None:
            self.answer(feature)


@implementer(IInitiatingFeature)
@attrs.define(eq=False)
class Feature:
    """
    A feature negotiated after SASL; the machine only names it to its IO.
    """

    name: str = "go"
    key: tuple[str, str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.key = (TEST_NS, self.name)

    def prepare(self, session: Any) -> None:
        pass

    def negotiate(self, session: Any, feature: domish.Element) -> Any:
        raise AssertionError("the machine negotiates nothing itself")


def serverHeader(
    streamId: str = FIRST_ID,
    namespace: str = NS_CLIENT,
    prefix: str = "stream",
    name: str = "stream",
    attributes: str = " from='%s' version='1.0'" % (SERVER,),
) -> domish.Element:
    """
    The root of a server's stream header.
    """
    return parseHeader(
        "<%s:%s xmlns='%s' xmlns:%s='%s' id='%s'%s>"
        % (prefix, name, namespace, prefix, NS_STREAMS, streamId, attributes)
    )


def mechanismsXml(*names: str) -> str:
    return "<mechanisms xmlns='%s'>%s</mechanisms>" % (
        NS_SASL,
        "".join("<mechanism>%s</mechanism>" % (name,) for name in names),
    )


STARTTLS_XML = "<starttls xmlns='%s'><required/></starttls>" % (NS_TLS,)


def features(*children: str) -> domish.Element:
    """
    A C{<stream:features/>} with the feature elements C{children}.
    """
    return parse("<stream:features>%s</stream:features>" % ("".join(children),))


def required(name: str, namespace: str = TEST_NS) -> str:
    """
    A feature element marked required.
    """
    return "<%s xmlns='%s'><required/></%s>" % (name, namespace, name)


def sasl(name: str, data: bytes | None = None, children: str = "") -> domish.Element:
    """
    A SASL element from the server, with C{data} base64-encoded.
    """
    content = "" if data is None else (base64.b64encode(data).decode("ascii") or "=")
    return parse("<%s xmlns='%s'>%s%s</%s>" % (name, NS_SASL, children, content, name))


def saslData(xml: str) -> bytes:
    """
    The data of a SASL element we sent.
    """
    text = str(parse(xml)).strip()
    return b"" if text == "=" else base64.b64decode(text)


PLAIN_AUTH = "<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (
    NS_SASL,
    base64.b64encode(b"\x00" + IDENTITY.encode() + b"\x00" + SECRET.encode()).decode("ascii"),
)
STARTTLS_SENT = "<starttls xmlns='%s'/>" % (NS_TLS,)
PROCEED = parse("<proceed xmlns='%s'/>" % (NS_TLS,))


class ScramServer:
    """
    The server's side of one SCRAM exchange, by scramp, not by the code
    under test.
    """

    def __init__(self, name: str = "SCRAM-SHA-256", secret: str = SECRET) -> None:
        mechanism = ScramMechanism(name)
        info = mechanism.make_auth_info(secret, iteration_count=4096)
        self.server = mechanism.make_server(lambda username: info)

    def first(self, authXml: str) -> domish.Element:
        """
        The challenge answering the C{<auth/>} sent.
        """
        self.server.set_client_first(saslData(authXml).decode())
        return sasl("challenge", self.server.get_server_first().encode())

    def final(self, responseXml: str) -> bytes:
        """
        The server-final message for the C{<response/>} sent (which scramp
        checks).
        """
        self.server.set_client_final(saslData(responseXml).decode())
        final: str = self.server.get_server_final()
        return final.encode()


class MachineTestCase(machinehelpers.MachineTestCase):
    """
    Drives a machine input by input, recording the transitions taken and
    the machine's log events.
    """

    def setUp(self) -> None:
        super().setUp()
        self.events: list[LogEvent] = []

        @provider(ILogObserver)
        def observe(event: LogEvent) -> None:
            if event.get("log_namespace") == "xmppcomp.stream.initiatingmachine":
                self.events.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def policy(self, **kwargs: Any) -> InitiatingPolicy:
        kwargs.setdefault("serverDomain", SERVER)
        kwargs.setdefault("identity", IDENTITY)
        kwargs.setdefault("secret", SECRET)
        kwargs.setdefault("mechanisms", ["PLAIN"])
        kwargs.setdefault("features", [Feature()])
        return InitiatingPolicy(**kwargs)

    def machine(
        self,
        state: str = "header",
        policy: InitiatingPolicy | None = None,
        proceeded: bool = True,
        laterFeatures: domish.Element | None = None,
        **kwargs: Any,
    ) -> tuple[InitiatingMachine, RecordingInitiatingIO]:
        """
        A connected machine in C{state}, reached through its inputs, and
        its IO with nothing recorded: through STARTTLS (in C{tls}, after
        C{<proceed/>} and the new header if C{proceeded}) and PLAIN; in
        C{features} negotiating the policy's first feature (offered as
        C{laterFeatures}, by default that feature alone, required); in
        C{failed} after a timeout.
        """
        if policy is None:
            policy = self.policy(**kwargs)
        io = RecordingInitiatingIO(now=100.0, peer="the server")
        machine = InitiatingMachine(io, policy)
        machine.connected()
        if state == "failed":
            machine.timedOut()
        elif state != "header":
            machine.header(serverHeader())
            machine.element(features(STARTTLS_XML, mechanismsXml("PLAIN")))
            if state != "tls" or proceeded:
                machine.element(PROCEED)
                machine.header(serverHeader(TLS_ID))
            if state not in ("tls",):
                machine.element(features(mechanismsXml("PLAIN")))
            if state not in ("tls", "sasl"):
                machine.element(sasl("success"))
            if state not in ("tls", "sasl", "restarting"):
                machine.header(serverHeader(FINAL_ID))
                if laterFeatures is None:
                    laterFeatures = features(required("go") if state == "features" else "")
                machine.element(laterFeatures)
        self.assertEqual(machine.state, state)
        self.events[:] = []
        io.take()
        return machine, io

    def assertFailed(self, io: RecordingIO, type: type, message: str, *after: tuple[Any, ...]) -> None:
        """
        The actions recorded are those of a failure: the timer cancelled,
        the failure reported, then C{after}.
        """
        self.assertEqual(described(io.take()), [("cancelTimer",), ("failed", type, message), *after])

    def assertClosed(self, io: RecordingIO, message: str, type: type = NegotiationError) -> None:
        """
        The actions recorded are those of a failure (see L{assertFailed}),
        then the stream closed.
        """
        self.assertFailed(io, type, message, ("close",))

    def assertOfferRefused(
        self, machine: InitiatingMachine, io: RecordingIO, offered: domish.Element, message: str
    ) -> None:
        """
        The element C{offered} is consumed, and fails negotiation with a
        L{NegotiationError} C{message}, closing the stream.
        """
        self.assertTrue(self.step(machine, "element", offered))
        self.assertClosed(io, message)

    def assertLogged(self, text: str) -> None:
        self.assertTrue(
            any(text in (event.get("log_format") or "") for event in self.events),
            "%r not logged in %r" % (text, [event.get("log_format") for event in self.events]),
        )


class ConnectionAndHeaderTests(MachineTestCase):
    """
    C{connected} and C{header}.
    """

    @takes(("header", "connected", "header"))
    def test_connected(self) -> None:
        """
        On connection the negotiation timeout starts and our header goes
        out, from our identity to the server.
        """
        io = RecordingInitiatingIO(now=100.0)
        machine = InitiatingMachine(io, self.policy())
        self.step(machine, "connected")
        self.assertEqual(io.take(), [("startTimer", 30.0), ("sendHeader", OUR_HEADER)])
        self.assertEqual(machine.started, 100.0)
        self.assertEqual(machine.state, "header")

    @takes(("header", "connected", "header"))
    def test_connectedHostname(self) -> None:
        """
        Our header is from the policy's hostname when it has one, and the
        timer lasts the policy's timeout.
        """
        io = RecordingInitiatingIO()
        machine = InitiatingMachine(io, self.policy(hostname="other.example.org", negotiationTimeout=7.5))
        self.step(machine, "connected")
        self.assertEqual(
            io.take(),
            [("startTimer", 7.5), ("sendHeader", OurHeader(NS_CLIENT, (1, 0), ours="other.example.org", theirs=SERVER))],
        )

    @takes(
        ("header", "header", "header"),
        ("tls", "header", "tls"),
        ("sasl", "header", "sasl"),
        ("restarting", "header", "restarting"),
        ("features", "header", "features"),
    )
    def test_goodHeader(self) -> None:
        """
        A good header from the server, in any state before negotiation
        completes, asks for nothing.
        """
        for state in NEGOTIATING:
            machine, io = self.machine(state)
            self.step(machine, "header", serverHeader("another-id"))
            self.assertEqual(io.take(), [])
            self.assertEqual(machine.state, state)

    @takes(("header", "header", "header"))
    def test_headerWithoutFromOrId(self) -> None:
        """
        A header without C{from} or C{id} is accepted too.
        """
        machine, io = self.machine()
        self.step(machine, "header", parseHeader("<stream:stream xmlns='%s' xmlns:stream='%s' version='1.0'>" % (NS_CLIENT, NS_STREAMS)))
        self.assertEqual(io.take(), [])
        self.assertEqual(machine.state, "header")

    def assertBadHeader(self, machine: InitiatingMachine, io: RecordingIO, root: domish.Element, condition: str) -> None:
        self.step(machine, "header", root)
        self.assertFailed(
            io,
            NegotiationError,
            "the server sent a bad stream header: %s" % (condition,),
            ("refuse", condition, None),
        )
        self.assertEqual(machine.state, "failed")

    @takes(("header", "header", "failed"))
    def test_badHeader(self) -> None:
        """
        Each condition a bad header raises fails negotiation, and is
        answered with that stream error.
        """
        cases = [
            (serverHeader(namespace="jabber:component:accept"), "invalid-namespace"),
            (serverHeader(name="other"), "invalid-namespace"),
            (serverHeader(prefix="s"), "bad-namespace-prefix"),
            (serverHeader(attributes=" from='%s'" % (SERVER,)), "unsupported-version"),
            (serverHeader(attributes=" version='2.0'"), "unsupported-version"),
            (serverHeader(attributes=" version='1'"), "bad-format"),
            (serverHeader(attributes=" version='one.zero'"), "bad-format"),
            (serverHeader(attributes=" version='1.0' to='a@b@c'"), "host-unknown"),
            (serverHeader(attributes=" version='1.0' from='@example.net'"), "invalid-from"),
        ]
        for root, condition in cases:
            machine, io = self.machine()
            self.assertBadHeader(machine, io, root, condition)
            self.assertLogged("stream negotiation with {server} failed")

    @takes(
        ("tls", "header", "failed"),
        ("sasl", "header", "failed"),
        ("restarting", "header", "failed"),
        ("features", "header", "failed"),
    )
    def test_badHeaderLater(self) -> None:
        """
        A bad header in a later state fails negotiation in the same way.
        """
        for state in ["tls", "sasl", "restarting", "features"]:
            machine, io = self.machine(state)
            self.assertBadHeader(machine, io, serverHeader(attributes=" version='0.9'"), "unsupported-version")

    @takes(("complete", "header", "complete"), ("failed", "header", "failed"))
    def test_headerAfterwards(self) -> None:
        """
        Once negotiation completed or failed, a header (even a bad one) is
        not looked at.
        """
        for state in ["complete", "failed"]:
            for root in [serverHeader(), serverHeader(prefix="s")]:
                machine, io = self.machine(state)
                self.step(machine, "header", root)
                self.assertEqual(io.take(), [])
                self.assertEqual(machine.state, state)


class FirstFeaturesTests(MachineTestCase):
    """
    C{element} in C{header}: the server's first features.
    """

    def started(self, **kwargs: Any) -> tuple[InitiatingMachine, RecordingInitiatingIO]:
        machine, io = self.machine(**kwargs)
        machine.header(serverHeader())
        io.take()
        return machine, io

    @takes(("header", "element", "tls"))
    def test_starttls(self) -> None:
        """
        Features offering STARTTLS get C{<starttls/>}.
        """
        machine, io = self.started()
        self.assertTrue(self.step(machine, "element", features(STARTTLS_XML, mechanismsXml("PLAIN"))))
        self.assertEqual(io.take(), [("send", STARTTLS_SENT)])
        self.assertEqual(machine.state, "tls")
        self.assertFalse(machine.tlsActive)

    @takes(("header", "element", "tls"))
    def test_starttlsNotRequired(self) -> None:
        """
        STARTTLS is negotiated when offered even if this side does not
        require TLS, and without the C{<required/>} mark.
        """
        machine, io = self.started(requireTLS=False)
        self.assertTrue(
            self.step(machine, "element", features("<starttls xmlns='%s'/>" % (NS_TLS,), mechanismsXml("PLAIN")))
        )
        self.assertEqual(io.take(), [("send", STARTTLS_SENT)])
        self.assertEqual(machine.state, "tls")

    @takes(("header", "element", "failed"))
    def test_noStarttls(self) -> None:
        """
        Without STARTTLS, when TLS is required, negotiation fails with
        L{TLSRequiredError} and the stream is closed.
        """
        machine, io = self.started()
        self.assertTrue(self.step(machine, "element", features(mechanismsXml("PLAIN", "SCRAM-SHA-1"))))
        self.assertClosed(io, "example.net did not offer STARTTLS, and this component requires TLS", TLSRequiredError)
        self.assertEqual(machine.state, "failed")

    @takes(("header", "element", "sasl"))
    def test_noStarttlsInsecure(self) -> None:
        """
        Without STARTTLS, when TLS is not required, SASL starts in
        plaintext, loudly.
        """
        machine, io = self.started(requireTLS=False, mechanisms=None)
        self.assertTrue(self.step(machine, "element", features(mechanismsXml("SCRAM-SHA-1", "PLAIN"))))
        [(action, xml)] = io.take()
        self.assertEqual(action, "send")
        auth = parse(xml)
        self.assertEqual((auth.uri, auth.name, auth["mechanism"]), (NS_SASL, "auth", "SCRAM-SHA-1"))
        self.assertTrue(saslData(xml).startswith(b"n,,n=comp.example.org,r="))
        self.assertEqual(machine.state, "sasl")
        self.assertLogged("INSECURE")
        self.assertFalse(machine.saslMadeAhead)

    @takes(("header", "element", "failed"))
    def test_noStarttlsInsecurePlainRefused(self) -> None:
        """
        Without TLS, PLAIN is never used: a server offering only PLAIN
        fails negotiation.
        """
        machine, io = self.started(requireTLS=False)
        self.assertOfferRefused(
            machine,
            io,
            features(mechanismsXml("PLAIN")),
            "no usable SASL mechanism: the server offered ['PLAIN'] (PLAIN: refused without TLS)",
        )
        self.assertLogged("INSECURE")

    @takes(("header", "element", "sasl"))
    def test_directTLS(self) -> None:
        """
        On a connection that is TLS from its first byte, STARTTLS is
        skipped (even when offered) and SASL starts: PLAIN in one step.
        """
        for offered in [features(mechanismsXml("PLAIN")), features(STARTTLS_XML, mechanismsXml("PLAIN"))]:
            machine, io = self.started(directTLS=True)
            self.assertTrue(self.step(machine, "element", offered))
            self.assertEqual(io.take(), [("send", PLAIN_AUTH)])
            self.assertEqual(machine.state, "sasl")
            self.assertEqual(self.events, [])

    @takes(("header", "element", "failed"))
    def test_noMechanisms(self) -> None:
        """
        Features without SASL mechanisms (when no STARTTLS comes first)
        fail negotiation, and the stream is closed.
        """
        machine, io = self.started(directTLS=True)
        self.assertOfferRefused(machine, io, features(), "example.net offered no SASL mechanisms")
        self.assertEqual(machine.state, "failed")

    @takes(("header", "element", "failed"))
    def test_noAcceptableMechanism(self) -> None:
        """
        Mechanisms of which none is usable fail negotiation, naming why
        each offered one is not.
        """
        for offered, detail in [
            (["DIGEST-MD5"], "['DIGEST-MD5'] (none of them is implemented)"),
            ([], "[] (none of them is implemented)"),
            (
                ["SCRAM-SHA-1", "EXTERNAL"],
                (
                    "['SCRAM-SHA-1', 'EXTERNAL'] (EXTERNAL: not allowed by configuration; "
                    "SCRAM-SHA-1: not allowed by configuration)"
                ),
            ),
        ]:
            machine, io = self.started(directTLS=True)
            self.assertOfferRefused(
                machine,
                io,
                features(mechanismsXml(*offered)),
                "no usable SASL mechanism: the server offered %s" % (detail,),
            )

    @takes(("header", "element", "header"))
    def test_otherElement(self) -> None:
        """
        Anything but features is not negotiation's: it is passed on.
        """
        machine, io = self.started()
        for xml in ["<message/>", "<proceed xmlns='%s'/>" % (NS_TLS,), "<features/>"]:
            self.assertFalse(self.step(machine, "element", parse(xml)))
        self.assertEqual(io.take(), [])
        self.assertEqual(machine.state, "header")

    @takes(("header", "element", "header"))
    def test_afterStreamEnd(self) -> None:
        """
        Elements after the stream ended (the server's stream error) are
        consumed, unlooked at.
        """
        machine, io = self.started()
        io.ended = True
        self.assertTrue(self.step(machine, "element", features(STARTTLS_XML)))
        self.assertEqual(io.take(), [])
        self.assertEqual(machine.state, "header")


class TLSTests(MachineTestCase):
    """
    C{element} and C{tlsDone} in C{tls}: STARTTLS, then the features of
    the stream under TLS.
    """

    @takes(("tls", "element", "tls"))
    def test_proceed(self) -> None:
        """
        C{<proceed/>} starts TLS and sends our header again.
        """
        machine, io = self.machine("tls", proceeded=False)
        self.assertTrue(self.step(machine, "element", PROCEED))
        self.assertEqual(io.take(), [("startTLS",), ("sendHeader", OUR_HEADER)])
        self.assertEqual(machine.state, "tls")
        self.assertTrue(machine.tlsActive)

    @takes(("tls", "element", "failed"))
    def test_tlsFailure(self) -> None:
        """
        STARTTLS refused: negotiation fails and the connection is dropped.
        """
        machine, io = self.machine("tls", proceeded=False)
        self.assertTrue(self.step(machine, "element", parse("<failure xmlns='%s'/>" % (NS_TLS,))))
        self.assertFailed(io, NegotiationError, "the server refused STARTTLS", ("disconnect",))
        self.assertEqual(machine.state, "failed")

    @takes(("tls", "element", "sasl"))
    def test_featuresUnderTLS(self) -> None:
        """
        The features of the stream under TLS start SASL: PLAIN, allowed
        now, in one step; the offer is remembered.
        """
        policy = self.policy()
        machine, io = self.machine("tls", policy=policy)
        self.assertTrue(self.step(machine, "element", features(mechanismsXml("PLAIN", "SCRAM-SHA-1"))))
        self.assertEqual(io.take(), [("send", PLAIN_AUTH)])
        self.assertEqual(machine.state, "sasl")
        self.assertFalse(machine.saslMadeAhead)
        self.assertEqual(
            policy.offers.get((SERVER, IDENTITY, ("PLAIN",), False)), (("PLAIN", "SCRAM-SHA-1"), None)
        )

    @takes(("tls", "element", "sasl"))
    def test_channelBinding(self) -> None:
        """
        With channel-binding data, SCRAM-SHA-256-PLUS is chosen, bound to
        the type both ends have; the server's types are part of the offer
        remembered.
        """
        policy = self.policy(mechanisms=None)
        machine, io = self.machine("tls", policy=policy)
        io.binding = ChannelBindingData("TLSv1.3", tlsServerEndPoint=b"e" * 32, tlsExporter=b"x" * 32)
        offered = features(
            mechanismsXml("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"),
            "<sasl-channel-binding xmlns='%s'><channel-binding type='tls-server-end-point'/></sasl-channel-binding>"
            % (NS_SASL_CB,),
        )
        self.assertTrue(self.step(machine, "element", offered))
        [(action, xml)] = io.take()
        self.assertEqual(action, "send")
        self.assertEqual(parse(xml)["mechanism"], "SCRAM-SHA-256-PLUS")
        self.assertTrue(saslData(xml).startswith(b"p=tls-server-end-point,,n=comp.example.org,r="))
        self.assertEqual(
            policy.offers.get((SERVER, IDENTITY, None, False)),
            (("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"), ("tls-server-end-point",)),
        )

    @takes(("tls", "element", "failed"))
    def test_featuresUnderTLSUnusable(self) -> None:
        """
        Under TLS, no mechanisms, or none usable, fail negotiation and
        close the stream.
        """
        machine, io = self.machine("tls")
        self.assertOfferRefused(machine, io, features(), "example.net offered no SASL mechanisms")
        machine, io = self.machine("tls")
        self.assertOfferRefused(machine, io, features(mechanismsXml("SCRAM-SHA-1")), SCRAM_SHA_1_UNUSABLE)

    @takes(("tls", "element", "tls"))
    def test_otherElement(self) -> None:
        """
        Before C{<proceed/>}, features are not negotiation's; after it, a
        TLS element is not; anything else neither: all are passed on.
        """
        machine, io = self.machine("tls", proceeded=False)
        for xml in ["<message/>", "<stream:features>%s</stream:features>" % (mechanismsXml("PLAIN"),)]:
            self.assertFalse(self.step(machine, "element", parse(xml)))
        self.assertEqual(io.take(), [])
        self.assertFalse(machine.tlsActive)
        machine, io = self.machine("tls")
        for xml in ["<message/>", "<proceed xmlns='%s'/>" % (NS_TLS,), "<failure xmlns='%s'/>" % (NS_TLS,)]:
            self.assertFalse(self.step(machine, "element", parse(xml)))
        self.assertEqual(io.take(), [])
        self.assertEqual(machine.state, "tls")

    @takes(("tls", "element", "tls"))
    def test_afterStreamEnd(self) -> None:
        """
        Elements after the stream ended are consumed, unlooked at.
        """
        for proceeded, element in [(False, PROCEED), (True, features(mechanismsXml("PLAIN")))]:
            machine, io = self.machine("tls", proceeded=proceeded)
            io.ended = True
            self.assertTrue(self.step(machine, "element", element))
            self.assertEqual(io.take(), [])
            self.assertEqual(machine.state, "tls")
            self.assertEqual(machine.tlsActive, proceeded)


class SpeculationTests(MachineTestCase):
    """
    C{tlsDone} in C{tls}: the C{<auth/>} for the server's last offer
    (L{OfferMemory}) is made while the server answers.
    """

    def remembering(self, offered: domish.Element | None = None, **kwargs: Any) -> InitiatingPolicy:
        """
        A policy whose offer memory has the offer of an earlier
        negotiation with the server.
        """
        policy = self.policy(**kwargs)
        machine, _ = self.machine("tls", policy=policy)
        machine.element(offered if offered is not None else features(mechanismsXml("PLAIN")))
        self.assertEqual(machine.state, "sasl")
        return policy

    @takes(("tls", "tlsDone", "tls"))
    def test_nothingRemembered(self) -> None:
        """
        With no offer remembered, the TLS handshake asks for nothing.
        """
        machine, io = self.machine("tls")
        self.step(machine, "tlsDone")
        self.assertEqual(io.take(), [])
        self.assertEqual(machine.state, "tls")

    @takes(("tls", "tlsDone", "tls"), ("tls", "element", "sasl"))
    def test_sameOffer(self) -> None:
        """
        With an offer remembered, the C{<auth/>} is made on the next turn;
        features with the same offer send it, without choosing again.
        """
        policy = self.remembering()
        machine, io = self.machine("tls", policy=policy)
        self.step(machine, "tlsDone")
        self.assertEqual(io.take(), [("callSoon", (("PLAIN",), None))])
        self.assertEqual(machine.state, "tls")
        io.runSoon()
        self.assertEqual(io.take(), [])
        self.assertEqual(io.bindingAsked, 1)
        self.assertTrue(self.step(machine, "element", features(mechanismsXml("PLAIN"))))
        self.assertEqual(io.take(), [("send", PLAIN_AUTH)])
        self.assertEqual(io.bindingAsked, 1)
        self.assertTrue(machine.saslMadeAhead)
        self.assertEqual(machine.state, "sasl")
        # The exchange made ahead goes on as any other.
        self.step(machine, "element", sasl("success"))
        self.assertEqual(machine.state, "restarting")

    @takes(("tls", "tlsDone", "tls"), ("tls", "element", "sasl"))
    def test_sameScramOffer(self) -> None:
        """
        A SCRAM C{<auth/>} made ahead is the one sent, and its exchange
        completes.
        """
        offered = features(mechanismsXml("SCRAM-SHA-256", "SCRAM-SHA-1"))
        policy = self.remembering(offered, mechanisms=None)
        machine, io = self.machine("tls", policy=policy)
        self.step(machine, "tlsDone")
        io.runSoon()
        io.take()
        self.assertTrue(self.step(machine, "element", offered))
        self.assertTrue(machine.saslMadeAhead)
        self.assertEqual(io.bindingAsked, 1)
        [(action, authXml)] = io.take()
        self.assertEqual(action, "send")
        self.assertEqual(parse(authXml)["mechanism"], "SCRAM-SHA-256")
        server = ScramServer()
        self.step(machine, "element", server.first(authXml))
        [(_, responseXml)] = io.take()
        self.step(machine, "element", sasl("success", server.final(responseXml)))
        self.assertEqual(machine.state, "restarting")

    @takes(("tls", "tlsDone", "tls"), ("tls", "element", "sasl"))
    def test_differentOffer(self) -> None:
        """
        Features with another offer than the one remembered are answered
        by a choice made now; the new offer is remembered.
        """
        policy = self.remembering()
        machine, io = self.machine("tls", policy=policy)
        self.step(machine, "tlsDone")
        io.runSoon()
        io.take()
        self.assertTrue(self.step(machine, "element", features(mechanismsXml("SCRAM-SHA-1", "PLAIN"))))
        self.assertEqual(io.take(), [("send", PLAIN_AUTH)])
        self.assertEqual(io.bindingAsked, 2)
        self.assertFalse(machine.saslMadeAhead)
        self.assertEqual(
            policy.offers.get((SERVER, IDENTITY, ("PLAIN",), False)), (("SCRAM-SHA-1", "PLAIN"), None)
        )

    @takes(("tls", "tlsDone", "tls"), ("tls", "element", "failed"))
    def test_differentOfferUnusable(self) -> None:
        """
        A different offer with nothing usable fails, though the remembered
        one was usable.
        """
        policy = self.remembering()
        machine, io = self.machine("tls", policy=policy)
        self.step(machine, "tlsDone")
        io.runSoon()
        io.take()
        self.assertOfferRefused(machine, io, features(mechanismsXml("SCRAM-SHA-1")), SCRAM_SHA_1_UNUSABLE)

    @takes(("tls", "tlsDone", "tls"), ("tls", "element", "failed"))
    def test_rememberedUnusable(self) -> None:
        """
        A remembered offer with nothing usable is not answered ahead; the
        same offer then fails as it would have.
        """
        policy = self.policy()
        policy.offers.remember((SERVER, IDENTITY, ("PLAIN",), False), (("DIGEST-MD5",), None))
        machine, io = self.machine("tls", policy=policy)
        self.step(machine, "tlsDone")
        self.assertEqual(io.take(), [("callSoon", (("DIGEST-MD5",), None))])
        io.runSoon()
        self.assertEqual(io.take(), [])
        self.assertOfferRefused(
            machine,
            io,
            features(mechanismsXml("DIGEST-MD5")),
            "no usable SASL mechanism: the server offered ['DIGEST-MD5'] (none of them is implemented)",
        )
        self.assertFalse(machine.saslMadeAhead)

    @takes(("tls", "tlsDone", "tls"), ("tls", "element", "sasl"))
    def test_tooLate(self) -> None:
        """
        When the features came before the call made ahead ran, it does
        nothing: the C{<auth/>} was made for them.
        """
        policy = self.remembering()
        machine, io = self.machine("tls", policy=policy)
        self.step(machine, "tlsDone")
        self.assertTrue(self.step(machine, "element", features(mechanismsXml("PLAIN"))))
        io.runSoon()
        self.assertEqual(io.take(), [("callSoon", (("PLAIN",), None)), ("send", PLAIN_AUTH)])
        self.assertFalse(machine.saslMadeAhead)
        self.assertEqual(machine.state, "sasl")
        self.assertEqual(io.bindingAsked, 1)

    @takes(("tls", "tlsDone", "tls"))
    def test_beforeProceed(self) -> None:
        """
        A call made ahead that runs while TLS is not up makes nothing.
        """
        policy = self.remembering()
        machine, io = self.machine("tls", policy=policy, proceeded=False)
        self.step(machine, "tlsDone")
        io.runSoon()
        self.assertEqual(io.bindingAsked, 0)
        machine.element(PROCEED)
        machine.header(serverHeader(TLS_ID))
        machine.element(features(mechanismsXml("PLAIN")))
        self.assertFalse(machine.saslMadeAhead)

    def test_memory(self) -> None:
        """
        L{OfferMemory} keeps the last offer per key, up to its size, then
        starts over.
        """
        memory = OfferMemory(size=2)
        memory.remember(("a",), (("PLAIN",), None))
        memory.remember(("a",), (("PLAIN",), None))
        memory.remember(("b",), (("X",), ("t",)))
        self.assertEqual(len(memory), 2)
        self.assertEqual(memory.get(("b",)), (("X",), ("t",)))
        memory.remember(("c",), (("Y",), None))
        self.assertEqual(len(memory), 1)
        self.assertIsNone(memory.get(("a",)))
        self.assertEqual(memory.get(("c",)), (("Y",), None))


class SASLTests(MachineTestCase):
    """
    C{element} in C{sasl}: the server's challenges, success or failure.
    """

    SUCCESS_ACTIONS: ClassVar[list[tuple[Any, ...]]] = [
        ("resetParser",),
        ("sendHeader", OUR_HEADER),
        ("afterRead",),
        ("afterRead",),
        ("prepareFeatures",),
    ]

    def scram(self) -> tuple[InitiatingMachine, RecordingInitiatingIO, ScramServer, str]:
        """
        A machine that sent a SCRAM-SHA-256 C{<auth/>}, a server that
        answers it, and that C{<auth/>}.
        """
        machine, io = self.machine("tls", mechanisms=["SCRAM-SHA-256"])
        machine.element(features(mechanismsXml("SCRAM-SHA-256", "PLAIN")))
        self.assertEqual(machine.state, "sasl")
        [(action, authXml)] = io.take()
        self.assertEqual(action, "send")
        self.assertEqual(parse(authXml)["mechanism"], "SCRAM-SHA-256")
        return machine, io, ScramServer(), authXml

    @takes(("sasl", "element", "restarting"))
    def test_plainSuccess(self) -> None:
        """
        C{<success/>} restarts the stream: the parser reset, our header,
        the features prepared after the read.
        """
        machine, io = self.machine("sasl")
        self.assertTrue(self.step(machine, "element", sasl("success")))
        self.assertEqual(io.take(), self.SUCCESS_ACTIONS)
        self.assertEqual(machine.state, "restarting")
        self.assertTrue(machine.sasl is not None and machine.sasl.done)

    @takes(("sasl", "element", "sasl"), ("sasl", "element", "restarting"))
    def test_scram(self) -> None:
        """
        A SCRAM exchange: the challenge is answered with the client-final
        message, which the server accepts; its signature with
        C{<success/>} restarts the stream.
        """
        machine, io, server, authXml = self.scram()
        self.assertTrue(self.step(machine, "element", server.first(authXml)))
        [(action, responseXml)] = io.take()
        self.assertEqual(action, "send")
        self.assertEqual((parse(responseXml).uri, parse(responseXml).name), (NS_SASL, "response"))
        self.assertEqual(machine.state, "sasl")
        signature = server.final(responseXml)
        self.assertTrue(self.step(machine, "element", sasl("success", signature)))
        self.assertEqual(io.take(), self.SUCCESS_ACTIONS)
        self.assertEqual(machine.state, "restarting")

    @takes(("sasl", "element", "sasl"), ("sasl", "element", "restarting"))
    def test_scramSignatureInChallenge(self) -> None:
        """
        A server that sends its signature in a last challenge gets an empty
        response, and then its empty C{<success/>} restarts the stream.
        """
        machine, io, server, authXml = self.scram()
        self.step(machine, "element", server.first(authXml))
        [(action, responseXml)] = io.take()
        self.assertEqual(action, "send")
        self.assertTrue(self.step(machine, "element", sasl("challenge", server.final(responseXml))))
        self.assertEqual(io.take(), [("send", "<response xmlns='%s'>=</response>" % (NS_SASL,))])
        self.assertEqual(machine.state, "sasl")
        self.assertTrue(self.step(machine, "element", sasl("success")))
        self.assertEqual(io.take(), self.SUCCESS_ACTIONS)
        self.assertEqual(machine.state, "restarting")

    @takes(("sasl", "element", "sasl"), ("sasl", "element", "failed"))
    def test_badServerSignature(self) -> None:
        """
        A server signature that is not the one for our keys (a server that
        does not know them) fails negotiation.
        """
        machine, io, server, authXml = self.scram()
        self.step(machine, "element", server.first(authXml))
        [(action, responseXml)] = io.take()
        self.assertEqual(action, "send")
        server.final(responseXml)
        wrong = b"v=" + base64.b64encode(b"\x00" * 32)
        self.assertTrue(self.step(machine, "element", sasl("success", wrong)))
        [cancel, (failed, type, message), close] = described(io.take())
        self.assertEqual((cancel, failed, type, close), (("cancelTimer",), "failed", NegotiationError, ("close",)))
        self.assertTrue(message.startswith("SCRAM-SHA-256: the server signature is missing or wrong"), message)
        self.assertEqual(machine.state, "failed")

    @takes(("sasl", "element", "failed"))
    def test_scramSuccessWithoutSignature(self) -> None:
        """
        C{<success/>} without a signature fails negotiation: the server
        did not authenticate itself.
        """
        machine, io, server, authXml = self.scram()
        self.step(machine, "element", server.first(authXml))
        io.take()
        self.assertOfferRefused(
            machine,
            io,
            sasl("success"),
            "SCRAM-SHA-256: the server sent no signature (v=) with success; it did not authenticate itself",
        )

    @takes(("sasl", "element", "failed"))
    def test_saslFailure(self) -> None:
        """
        C{<failure/>} fails negotiation with L{SASLFailure}, and the stream
        is closed.
        """
        machine, io = self.machine("sasl")
        failure = sasl("failure", children="<not-authorized/><text>bad secret</text>")
        self.assertTrue(self.step(machine, "element", failure))
        self.assertClosed(io, "SASL failure not-authorized: bad secret", SASLFailure)
        self.assertEqual(machine.state, "failed")
        machine, io = self.machine("sasl")
        self.assertTrue(self.step(machine, "element", sasl("failure", children="<temporary-auth-failure/>")))
        self.assertClosed(io, "SASL failure temporary-auth-failure", SASLFailure)

    @takes(("sasl", "element", "sasl"), ("sasl", "element", "failed"))
    def test_plainChallenge(self) -> None:
        """
        An empty challenge to PLAIN is answered with the message again; any
        other fails negotiation.
        """
        machine, io = self.machine("sasl")
        self.assertTrue(self.step(machine, "element", sasl("challenge", b"")))
        self.assertEqual(io.take(), [("send", PLAIN_AUTH.replace("auth", "response").replace(" mechanism='PLAIN'", ""))])
        self.assertOfferRefused(
            machine, io, sasl("challenge", b"what?"), "PLAIN: the server sent an unexpected challenge"
        )

    @takes(("sasl", "element", "failed"))
    def test_badSASLElement(self) -> None:
        """
        Invalid base64, additional data with PLAIN's success, or a SASL
        element the server does not send fail negotiation.
        """
        for element, message in [
            (parse("<success xmlns='%s'>not base64!</success>" % (NS_SASL,)), "the server sent invalid base64 in <success/>"),
            (sasl("success", b"extra"), "the server sent additional data with success for PLAIN, which has none"),
            (sasl("auth"), "unexpected element {%s}auth during SASL" % (NS_SASL,)),
        ]:
            machine, io = self.machine("sasl")
            self.assertOfferRefused(machine, io, element, message)

    @takes(("sasl", "element", "sasl"))
    def test_otherElement(self) -> None:
        """
        Elements outside the SASL namespace are passed on.
        """
        machine, io = self.machine("sasl")
        for xml in ["<message/>", "<success xmlns='%s'/>" % (NS_TLS,), "<stream:features/>"]:
            self.assertFalse(self.step(machine, "element", parse(xml)))
        self.assertEqual(io.take(), [])
        self.assertEqual(machine.state, "sasl")

    @takes(("sasl", "element", "sasl"))
    def test_afterStreamEnd(self) -> None:
        """
        Elements after the stream ended are consumed, unlooked at.
        """
        machine, io = self.machine("sasl")
        io.ended = True
        self.assertTrue(self.step(machine, "element", sasl("success")))
        self.assertEqual(io.take(), [])
        self.assertEqual(machine.state, "sasl")


class LaterFeaturesTests(MachineTestCase):
    """
    C{element} in C{restarting}, and C{featureDone}, C{featureFailed} in
    C{features}: the features negotiated after SASL.
    """

    def restarted(self, *policyFeatures: Feature) -> tuple[InitiatingMachine, RecordingInitiatingIO]:
        machine, io = self.machine("restarting", features=list(policyFeatures) or [Feature()])
        io.clock = 100.5
        machine.header(serverHeader(FINAL_ID))
        return machine, io

    def result(self, elapsed: float = 0.5, tlsVersion: str | None = "TLSv1.3") -> NegotiationResult:
        return NegotiationResult(
            identity=IDENTITY, mechanism="PLAIN", tlsVersion=tlsVersion, streamId=FINAL_ID, elapsed=elapsed
        )

    @takes(("restarting", "element", "complete"))
    def test_nothingRequired(self) -> None:
        """
        Features with nothing required (voluntary ones included) complete
        negotiation, with its result.
        """
        for children in [(), ("<go xmlns='%s'/>" % (TEST_NS,), "<other xmlns='%s'/>" % (UNKNOWN_NS,))]:
            machine, io = self.restarted()
            self.assertTrue(self.step(machine, "element", features(*children)))
            self.assertEqual(io.take(), [("cancelTimer",), ("succeeded", self.result())])
            self.assertEqual(machine.state, "complete")
            self.assertLogged("stream to {server} negotiated as {identity}")

    @takes(("restarting", "element", "complete"))
    def test_resultFacts(self) -> None:
        """
        The result carries the TLS version and stream id the IO reports.
        """
        machine, io = self.restarted()
        io.version = None
        io.sid = None
        self.assertTrue(self.step(machine, "element", features()))
        self.assertEqual(
            io.take(),
            [
                ("cancelTimer",),
                (
                    "succeeded",
                    NegotiationResult(identity=IDENTITY, mechanism="PLAIN", tlsVersion=None, streamId=None, elapsed=0.5),
                ),
            ],
        )

    @takes(("restarting", "element", "features"))
    def test_requiredFeature(self) -> None:
        """
        A required feature this side knows is negotiated.
        """
        feature = Feature()
        machine, io = self.restarted(feature)
        self.assertTrue(self.step(machine, "element", features(required("go"))))
        self.assertEqual(io.take(), [("negotiateFeature", feature, required("go"))])
        self.assertEqual(machine.state, "features")

    @takes(("restarting", "element", "complete"))
    def test_featureAnsweredAtOnce(self) -> None:
        """
        A feature that is negotiated as soon as asked (its C{featureDone}
        comes during C{negotiateFeature}) completes negotiation at once.
        """
        feature = Feature()
        machine, io = self.restarted(feature)
        io.answer = lambda f: machine.featureDone(f.key)
        self.assertTrue(self.step(machine, "element", features(required("go"))))
        self.assertEqual(
            io.take(),
            [("negotiateFeature", feature, required("go")), ("cancelTimer",), ("succeeded", self.result())],
        )
        self.assertEqual(machine.state, "complete")

    @takes(("restarting", "element", "failed"))
    def test_featureFailsAtOnce(self) -> None:
        """
        A feature that fails as soon as asked fails negotiation at once.
        """
        feature = Feature()
        machine, io = self.restarted(feature)
        io.answer = lambda f: machine.featureFailed(NegotiationError("no"))
        self.assertTrue(self.step(machine, "element", features(required("go"))))
        [negotiate, *rest] = io.take()
        self.assertEqual(negotiate, ("negotiateFeature", feature, required("go")))
        self.assertEqual(described(rest), [("cancelTimer",), ("failed", NegotiationError, "no"), ("close",)])
        self.assertEqual(machine.state, "failed")

    @takes(("restarting", "element", "failed"))
    def test_unknownRequiredFeature(self) -> None:
        """
        A required feature this side cannot negotiate fails negotiation
        and closes the stream.
        """
        machine, io = self.restarted()
        self.assertOfferRefused(machine, io, features(required("other", UNKNOWN_NS), required("go")), UNKNOWN_REQUIRED)
        self.assertEqual(machine.state, "failed")

    @takes(("restarting", "element", "restarting"))
    def test_otherElement(self) -> None:
        """
        Anything but features is passed on.
        """
        machine, io = self.restarted()
        for xml in ["<message/>", "<success xmlns='%s'/>" % (NS_SASL,), "<features xmlns='%s'/>" % (TEST_NS,)]:
            self.assertFalse(self.step(machine, "element", parse(xml)))
        self.assertEqual(io.take(), [])
        self.assertEqual(machine.state, "restarting")

    @takes(("restarting", "element", "restarting"))
    def test_afterStreamEnd(self) -> None:
        """
        Elements after the stream ended are consumed, unlooked at.
        """
        machine, io = self.restarted()
        io.ended = True
        self.assertTrue(self.step(machine, "element", features()))
        self.assertEqual(io.take(), [])
        self.assertEqual(machine.state, "restarting")

    @takes(("restarting", "element", "features"), ("features", "featureDone", "features"), ("features", "featureDone", "complete"))
    def test_featuresInTurn(self) -> None:
        """
        Required features are negotiated in the order offered, one after
        the other; then negotiation completes.
        """
        first, second = Feature("go"), Feature("bind")
        machine, io = self.restarted(second, first)
        offered = features(required("go"), "<voluntary xmlns='%s'/>" % (TEST_NS,), required("bind"))
        self.assertTrue(self.step(machine, "element", offered))
        self.assertEqual(io.take(), [("negotiateFeature", first, required("go"))])
        self.step(machine, "featureDone", first.key)
        self.assertEqual(io.take(), [("negotiateFeature", second, required("bind"))])
        self.assertEqual(machine.state, "features")
        io.clock = 101.0
        self.step(machine, "featureDone", second.key)
        self.assertEqual(io.take(), [("cancelTimer",), ("succeeded", self.result(elapsed=1.0))])
        self.assertEqual(machine.state, "complete")

    @takes(("features", "featureDone", "failed"))
    def test_unknownAfterKnown(self) -> None:
        """
        A required feature this side cannot negotiate, after one it did,
        fails negotiation then.
        """
        machine, io = self.restarted()
        machine.element(features(required("go"), required("other", UNKNOWN_NS)))
        io.take()
        self.step(machine, "featureDone", (TEST_NS, "go"))
        self.assertClosed(io, UNKNOWN_REQUIRED)
        self.assertEqual(machine.state, "failed")

    @takes(("features", "featureFailed", "failed"))
    def test_featureFailed(self) -> None:
        """
        A feature that fails fails negotiation with its reason, and closes
        the stream.
        """
        for reason in [NegotiationError("bind refused"), Failure(StreamError("conflict"))]:
            machine, io = self.machine("features")
            self.step(machine, "featureFailed", reason)
            self.assertEqual(io.take(), [("cancelTimer",), ("failed", reason), ("close",)])
            self.assertEqual(machine.state, "failed")

    @takes(("features", "element", "features"))
    def test_elementWhileNegotiating(self) -> None:
        """
        While a feature is negotiated, elements (its answers) are passed
        on, even after the stream ended.
        """
        machine, io = self.machine("features")
        for xml in ["<iq type='result' id='1'/>", "<stream:features/>", "<success xmlns='%s'/>" % (NS_SASL,)]:
            self.assertFalse(self.step(machine, "element", parse(xml)))
        io.ended = True
        self.assertFalse(self.step(machine, "element", parse("<message/>")))
        self.assertEqual(io.take(), [])
        self.assertEqual(machine.state, "features")


class EventTests(MachineTestCase):
    """
    C{tlsDone}, C{timedOut}, C{ended}, and the inputs after negotiation.
    """

    @takes(
        ("header", "tlsDone", "header"),
        ("sasl", "tlsDone", "sasl"),
        ("restarting", "tlsDone", "restarting"),
        ("features", "tlsDone", "features"),
        ("complete", "tlsDone", "complete"),
        ("failed", "tlsDone", "failed"),
    )
    def test_tlsDoneElsewhere(self) -> None:
        """
        Outside C{tls} (a direct TLS connection's handshake, say), the TLS
        handshake asks for nothing, even with an offer remembered.
        """
        for state in ["header", "sasl", "restarting", "features", "complete", "failed"]:
            policy = self.policy()
            policy.offers.remember((SERVER, IDENTITY, ("PLAIN",), False), (("PLAIN",), None))
            machine, io = self.machine(state, policy=policy)
            self.step(machine, "tlsDone")
            self.assertEqual(io.take(), [])
            self.assertEqual(io.soon, [])
            self.assertEqual(machine.state, state)

    @takes(*((state, "timedOut", "failed") for state in NEGOTIATING))
    def test_timedOut(self) -> None:
        """
        Not negotiated within the timeout: negotiation fails and the stream
        is closed.
        """
        for state in NEGOTIATING:
            machine, io = self.machine(state)
            self.step(machine, "timedOut")
            self.assertClosed(io, "stream negotiation with example.net not complete after 30 seconds")
            self.assertEqual(machine.state, "failed")

    @takes(*((state, "ended", "failed") for state in NEGOTIATING))
    def test_ended(self) -> None:
        """
        The end of the stream before negotiation completed is why it
        failed.
        """
        for state in NEGOTIATING:
            for reason in [Failure(StreamError("host-unknown")), Failure(Exception("connection lost"))]:
                machine, io = self.machine(state)
                self.step(machine, "ended", reason)
                self.assertEqual(io.take(), [("cancelTimer",), ("failed", reason)])
                self.assertEqual(machine.state, "failed")

    @takes(
        ("complete", "timedOut", "complete"),
        ("failed", "timedOut", "failed"),
        ("complete", "ended", "complete"),
        ("failed", "ended", "failed"),
        ("complete", "featureDone", "complete"),
        ("failed", "featureDone", "failed"),
        ("complete", "featureFailed", "complete"),
        ("failed", "featureFailed", "failed"),
    )
    def test_afterwards(self) -> None:
        """
        Once negotiation completed or failed, a timeout, the end of the
        stream and a feature's answer report nothing more.
        """
        for state in ["complete", "failed"]:
            for input, args in [
                ("timedOut", ()),
                ("ended", (Failure(Exception("gone")),)),
                ("featureDone", ((TEST_NS, "go"),)),
                ("featureFailed", (NegotiationError("late"),)),
            ]:
                machine, io = self.machine(state)
                self.step(machine, input, *args)
                self.assertEqual(io.take(), [])
                self.assertEqual(machine.state, state)

    @takes(("features", "featureFailed", "failed"), ("failed", "featureDone", "failed"))
    def test_featureAnswerAfterFailure(self) -> None:
        """
        A feature's answer after negotiation failed meanwhile is ignored.
        """
        machine, io = self.machine("features")
        self.step(machine, "featureFailed", NegotiationError("first"))
        io.take()
        self.step(machine, "featureDone", (TEST_NS, "go"))
        self.assertEqual(io.take(), [])

    @takes(("complete", "element", "complete"))
    def test_elementAfterComplete(self) -> None:
        """
        Once negotiated, every element is passed on.
        """
        machine, io = self.machine("complete")
        for element in [parse("<message/>"), features(STARTTLS_XML), sasl("success"), PROCEED]:
            self.assertFalse(self.step(machine, "element", element))
        self.assertEqual(io.take(), [])

    @takes(("failed", "element", "failed"))
    def test_elementAfterFailure(self) -> None:
        """
        Elements that arrive while a failed stream closes are dropped.
        """
        machine, io = self.machine("failed")
        for element in [parse("<message/>"), features(STARTTLS_XML), sasl("success"), PROCEED]:
            self.assertTrue(self.step(machine, "element", element))
        self.assertEqual(io.take(), [])


class CoverageTests(SynchronousTestCase):
    """
    The tests above take every transition of the table, and the machine is
    pure.
    """

    def test_everyTransitionTaken(self) -> None:
        """
        Every (state, input, behaviour, next state) of the table is taken
        by a test of this module, and no other.
        """
        self.assertEqual(TAKEN, transitionsOf(TABLE))

    def test_everyRowTaken(self) -> None:
        """
        Every row of the table applies to a transition taken.
        """
        self.assertEqual(rowsNotTaken(TABLE, TAKEN), set())

    def test_inputsThatCannotCome(self) -> None:
        """
        The table has a row for every input in every state, but for those
        that cannot come there: C{connected} after the first state, and a
        feature's answer before a feature is negotiated (the machine asks
        for one only in C{features}, which leads only to C{complete} and
        C{failed}). Those raise L{LookupError}.
        """
        missing = {(state, input) for state in TABLE.states for input in TABLE.inputs if TABLE.lookup(state, input) is None}
        expected = {(state, "connected") for state in TABLE.states if state != "header"} | {
            (state, input)
            for state in ("header", "tls", "sasl", "restarting")
            for input in ("featureDone", "featureFailed")
        }
        self.assertEqual(missing, expected)
        machine = InitiatingMachine(RecordingInitiatingIO(), InitiatingPolicy(SERVER, IDENTITY, SECRET))
        self.assertRaises(LookupError, machine.featureDone, (TEST_NS, "go"))
        machine.connected()
        machine.timedOut()
        self.assertRaises(LookupError, machine.connected)

    def test_table(self) -> None:
        """
        The machine's table is a L{Table} starting in C{header}.
        """
        self.assertIsInstance(TABLE, Table)
        self.assertEqual(TABLE.initial, "header")

    def test_noTwistedInternet(self) -> None:
        """
        The machine's code uses nothing of C{twisted.internet}.
        """
        self.assertEqual(internetNamesUsedBy(InitiatingMachine), set())
