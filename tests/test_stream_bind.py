# -*- test-case-name: tests.test_stream_bind -*-
"""
Tests for the receiving side of L{xmppcomp.stream.bind}: the answers of
L{HostnameBinder} to bind and unbind requests (XEP-0225, in both
namespaces), fed as parsed elements with a fake registry, and the
L{BindFeature} that adapts it to negotiation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.error import NS_XMPP_STANZAS
from twisted.words.xish import domish
from zope.interface.verify import verifyObject

from xmppcomp.interfaces import IReceivingFeature
from xmppcomp.ns import NS_COMPONENT_0, NS_COMPONENT_TMP
from xmppcomp.stream.bind import (
    BIND_NAMESPACES,
    MAX_HOSTNAME_LENGTH,
    BindFeature,
    BindRequest,
    HostnameBinder,
    bindChild,
    bindFeatures,
    parseBindRequest,
)

from .streamhelpers import parse

IDENTITY = "alpha.example"


def request(
    hostname: str | None,
    action: str = "bind",
    namespace: str = NS_COMPONENT_0,
    identifier: str = "b1",
) -> domish.Element:
    """
    A bind (or unbind) request with one C{<hostname/>}, or none.
    """
    inner = "" if hostname is None else f"<hostname>{hostname}</hostname>"
    return parse(
        f"<iq type='set' id='{identifier}'><{action} xmlns='{namespace}'>{inner}</{action}></iq>"
    )


def condition(answer: domish.Element) -> tuple[str, str] | None:
    """
    The stanza error (type, condition) of an answer, or C{None} for a
    result.
    """
    if answer["type"] == "result":
        return None
    [error] = answer.elements(None, "error")
    [name] = (child.name for child in error.elements(NS_XMPP_STANZAS) if child.name != "text")
    return error["type"], name


class Registry:
    """
    A L{xmppcomp.stream.bind.HostnameRegistry}: C{identity} may bind itself
    and the names under it; each name routes to one owner.

    @ivar routes: hostname to owner.
    @ivar calls: the calls, as tuples.
    """

    def __init__(self) -> None:
        self.routes: dict[str, object] = {}
        self.calls: list[tuple[str, ...]] = []

    def mayBind(self, identity: str, hostname: str) -> bool:
        self.calls.append(("mayBind", identity, hostname))
        return hostname == identity or hostname.endswith("." + identity)

    def claim(self, hostname: str, owner: object) -> bool:
        self.calls.append(("claim", hostname))
        if hostname in self.routes:
            return False
        self.routes[hostname] = owner
        return True

    def release(self, hostname: str, owner: object) -> None:
        self.calls.append(("release", hostname))
        if self.routes.get(hostname) is owner:
            del self.routes[hostname]


class Session:
    """
    One session's binder, and the answers it sent.
    """

    def __init__(self, registry: Registry, identity: str = IDENTITY, maxNames: int = 64) -> None:
        self.registry = registry
        self.owner = object()
        self.binder = HostnameBinder(identity, self.owner, registry, maxNames)
        self.sent: list[domish.Element] = []

    def ask(self, iq: domish.Element) -> domish.Element:
        """
        Hand C{iq} to the binder; return its one answer.
        """
        before = len(self.sent)
        self.binder.handle(iq, self.sent.append)
        [answer] = self.sent[before:]
        return answer

    def bind(self, hostname: str, namespace: str = NS_COMPONENT_0) -> domish.Element:
        return self.ask(request(hostname, "bind", namespace))

    def unbind(self, hostname: str, namespace: str = NS_COMPONENT_0) -> domish.Element:
        return self.ask(request(hostname, "unbind", namespace))


class BindTests(SynchronousTestCase):
    """
    Answers to C{<bind/>}.
    """

    def setUp(self) -> None:
        self.registry = Registry()
        self.session = Session(self.registry)

    def test_resultRepeatsHostname(self) -> None:
        """
        In C{urn:xmpp:component:0} a bind is answered by a result that
        repeats the bound hostname; the name routes to the session.
        """
        iq = parse(
            f"<iq type='set' id='b7' from='{IDENTITY}' to='router.example'>"
            f"<bind xmlns='{NS_COMPONENT_0}'><hostname>chat.alpha.example</hostname></bind></iq>"
        )
        answer = self.session.ask(iq)
        self.assertEqual(
            answer.toXml(),
            "<iq to='alpha.example' from='router.example' id='b7' type='result'>"
            f"<bind xmlns='{NS_COMPONENT_0}'><hostname>chat.alpha.example</hostname></bind></iq>",
        )
        self.assertEqual(self.session.binder.bound, ["chat.alpha.example"])
        self.assertIs(self.registry.routes["chat.alpha.example"], self.session.owner)

    def test_resultEmptyInTmpNamespace(self) -> None:
        """
        In the seed's C{urn:xmpp:tmp:component} the result is empty.
        """
        answer = self.session.bind("chat.alpha.example", NS_COMPONENT_TMP)
        self.assertEqual((answer["type"], answer.children), ("result", []))
        self.assertEqual(self.session.binder.bound, ["chat.alpha.example"])

    def test_normalised(self) -> None:
        """
        The hostname is bound, routed and repeated in its normal form:
        white space around it dropped, lowercased, IDNA A-labels.
        """
        for asked, bound in (
            ("  Chat.ALPHA.example\n", "chat.alpha.example"),
            ("BÜCHER.alpha.example", "xn--bcher-kva.alpha.example"),
        ):
            answer = self.session.bind(asked)
            self.assertEqual(str(answer.bind.hostname), bound)
            self.assertIn(bound, self.registry.routes)

    def test_identityItself(self) -> None:
        """
        A session may bind its authenticated domain itself.
        """
        self.assertIsNone(condition(self.session.bind(IDENTITY)))

    def test_conflictOtherSession(self) -> None:
        """
        A name another session bound is answered C{conflict} (type
        C{cancel}); it stays with the first session.
        """
        first = Session(self.registry)
        first.bind("chat.alpha.example")
        answer = self.session.bind("chat.alpha.example")
        self.assertEqual(condition(answer), ("cancel", "conflict"))
        self.assertIs(self.registry.routes["chat.alpha.example"], first.owner)
        self.assertEqual(self.session.binder.bound, [])

    def test_conflictSameSession(self) -> None:
        """
        Binding a name the session bound already is C{conflict} too, and
        the name is bound once.
        """
        self.session.bind("chat.alpha.example")
        answer = self.session.bind("CHAT.alpha.example")
        self.assertEqual(condition(answer), ("cancel", "conflict"))
        self.assertEqual(self.session.binder.bound, ["chat.alpha.example"])

    def test_notAllowed(self) -> None:
        """
        A name the authenticated identity may not use is answered
        C{not-allowed} (type C{cancel}), and nothing is claimed.
        """
        answer = self.session.bind("beta.example")
        self.assertEqual(condition(answer), ("cancel", "not-allowed"))
        self.assertNotIn(("claim", "beta.example"), self.registry.calls)
        self.assertEqual(self.session.binder.bound, [])

    def test_notAllowedBeforeConflict(self) -> None:
        """
        A name bound by another session that this one may not use is
        answered C{not-allowed}, not C{conflict}: the answer does not tell
        a stranger which names are in use.
        """
        Session(self.registry, "beta.example").bind("beta.example")
        self.assertEqual(condition(self.session.bind("beta.example")), ("cancel", "not-allowed"))

    def test_badRequest(self) -> None:
        """
        A missing, empty, doubled or malformed hostname is answered
        C{bad-request} (type C{modify}), and nothing is claimed.
        """
        bodies = [
            "",
            "<hostname/>",
            "<hostname>  </hostname>",
            "<hostname>a.alpha.example</hostname><hostname>b.alpha.example</hostname>",
            "<hostname>user@alpha.example</hostname>",
            "<hostname>alpha.example/resource</hostname>",
            "<hostname>.alpha.example</hostname>",
            "<hostname>a..alpha.example</hostname>",
            "<hostname>a b.alpha.example</hostname>",
            "<hostname>*.alpha.example</hostname>",
            "<hostname>-a.alpha.example</hostname>",
            "<hostname>alpha.example:5347</hostname>",
            "<hostname>[::1]</hostname>",
            "<hostname>%s.alpha.example</hostname>" % ("a" * MAX_HOSTNAME_LENGTH,),
        ]
        for body in bodies:
            answer = self.session.ask(
                parse(f"<iq type='set' id='x'><bind xmlns='{NS_COMPONENT_0}'>{body}</bind></iq>")
            )
            self.assertEqual(condition(answer), ("modify", "bad-request"), body)
        self.assertEqual(self.registry.calls, [])
        self.assertEqual(self.session.binder.bound, [])

    def test_refusalEchoesNothing(self) -> None:
        """
        A refused bind is answered with the request's addressing, id and
        the error only, never the request echoed (RFC 6120 section 8.3.1):
        a request padded with 100 KB gets an answer of a few hundred bytes.
        """
        padded = parse(
            "<iq type='set' id='big' from='comp.example.net' to='router.example.net'>"
            "<bind xmlns='%s'><hostname>a b</hostname><junk>%s</junk></bind></iq>"
            % (NS_COMPONENT_0, "x" * 100_000)
        )
        answer = self.session.ask(padded)
        self.assertEqual(condition(answer), ("modify", "bad-request"))
        self.assertEqual((answer["id"], answer["to"], answer["from"]), ("big", "comp.example.net", "router.example.net"))
        self.assertEqual([child.name for child in answer.elements()], ["error"])
        self.assertLess(len(answer.toXml()), 1000)

    def test_longestHostname(self) -> None:
        """
        A hostname of exactly C{MAX_HOSTNAME_LENGTH} (253) bytes is no
        C{bad-request} for its length.
        """
        labels = ["a" * 63] * 3
        name = ".".join(labels) + "." + "b" * (MAX_HOSTNAME_LENGTH - 64 * 3 - len(IDENTITY) - 1)
        name += "." + IDENTITY
        self.assertEqual(len(name.encode("utf-8")), MAX_HOSTNAME_LENGTH)
        self.assertIsNone(condition(self.session.bind(name)))
        self.assertEqual(condition(self.session.bind("a" + name)), ("modify", "bad-request"))

    def test_manyNames(self) -> None:
        """
        One session binds many names, each answered in turn; they are kept
        in binding order.
        """
        names = [f"n{i}.alpha.example" for i in range(5)]
        answers = [self.session.bind(name) for name in names]
        self.assertEqual([condition(answer) for answer in answers], [None] * 5)
        self.assertEqual(self.session.binder.bound, names)
        self.assertEqual(sorted(self.registry.routes), names)

    def test_refusalKeepsOthers(self) -> None:
        """
        A refused name leaves the names bound before it bound.
        """
        self.session.bind("a.alpha.example")
        self.session.bind("beta.example")
        Session(self.registry).bind("c.alpha.example")
        self.session.bind("c.alpha.example")
        self.session.bind("d.alpha.example")
        self.assertEqual(self.session.binder.bound, ["a.alpha.example", "d.alpha.example"])

    def test_limit(self) -> None:
        """
        Beyond C{maxNames} names a bind is answered C{resource-constraint}
        (type C{wait}), saying the limit; unbinding a name makes room.
        """
        session = Session(self.registry, maxNames=2)
        session.bind("a.alpha.example")
        session.bind("b.alpha.example")
        answer = session.bind("c.alpha.example")
        self.assertEqual(condition(answer), ("wait", "resource-constraint"))
        self.assertIn("at most 2 hostnames", str(answer.error.text))
        self.assertNotIn("c.alpha.example", self.registry.routes)
        session.unbind("a.alpha.example")
        self.assertIsNone(condition(session.bind("c.alpha.example")))
        self.assertEqual(session.binder.bound, ["b.alpha.example", "c.alpha.example"])

    def test_notAllowedAtLimit(self) -> None:
        """
        At the limit, a name the identity may not use is still answered
        C{not-allowed}.
        """
        session = Session(self.registry, maxNames=1)
        session.bind("a.alpha.example")
        self.assertEqual(condition(session.bind("beta.example")), ("cancel", "not-allowed"))

    def test_defaultLimit(self) -> None:
        """
        By default a session binds up to 64 names.
        """
        session = Session(self.registry)
        self.assertEqual(session.binder.maxNames, 64)
        for i in range(64):
            self.assertIsNone(condition(session.bind(f"n{i}.alpha.example")))
        self.assertEqual(
            condition(session.bind("n64.alpha.example")), ("wait", "resource-constraint")
        )


class UnbindTests(SynchronousTestCase):
    """
    Answers to C{<unbind/>}.
    """

    def setUp(self) -> None:
        self.registry = Registry()
        self.session = Session(self.registry)

    def test_result(self) -> None:
        """
        Unbinding a bound name is answered by an empty result, in either
        namespace, and the name stops routing to the session at once.
        """
        for namespace in BIND_NAMESPACES:
            self.session.bind("chat.alpha.example", namespace)
            answer = self.session.unbind("Chat.alpha.example", namespace)
            self.assertEqual((answer["type"], answer.children), ("result", []))
            self.assertEqual(self.session.binder.bound, [])
            self.assertNotIn("chat.alpha.example", self.registry.routes)

    def test_rebindElsewhere(self) -> None:
        """
        Once unbound, another session can bind the name.
        """
        self.session.bind("chat.alpha.example")
        self.session.unbind("chat.alpha.example")
        other = Session(self.registry)
        self.assertIsNone(condition(other.bind("chat.alpha.example")))

    def test_notBound(self) -> None:
        """
        Unbinding a name the session did not bind is answered
        C{item-not-found} (type C{cancel}), also when another session
        bound it, which keeps it.
        """
        other = Session(self.registry)
        other.bind("chat.alpha.example")
        for name in ("chat.alpha.example", "never.alpha.example"):
            self.assertEqual(condition(self.session.unbind(name)), ("cancel", "item-not-found"))
        self.assertIs(self.registry.routes["chat.alpha.example"], other.owner)
        self.assertNotIn(("release", "chat.alpha.example"), self.registry.calls)

    def test_unbindTwice(self) -> None:
        """
        The second unbind of a name is C{item-not-found}.
        """
        self.session.bind("chat.alpha.example")
        self.assertIsNone(condition(self.session.unbind("chat.alpha.example")))
        self.assertEqual(
            condition(self.session.unbind("chat.alpha.example")), ("cancel", "item-not-found")
        )

    def test_malformed(self) -> None:
        """
        An unbind without a hostname is C{bad-request}.
        """
        answer = self.session.ask(request(None, "unbind"))
        self.assertEqual(condition(answer), ("modify", "bad-request"))

    def test_others(self) -> None:
        """
        Unbinding one name leaves the others bound, in order.
        """
        for name in ("a.alpha.example", "b.alpha.example", "c.alpha.example"):
            self.session.bind(name)
        self.session.unbind("b.alpha.example")
        self.assertEqual(self.session.binder.bound, ["a.alpha.example", "c.alpha.example"])
        self.assertEqual(sorted(self.registry.routes), ["a.alpha.example", "c.alpha.example"])

    def test_releaseAll(self) -> None:
        """
        When the session ends every name is released and returned, in
        binding order; a second call releases nothing.
        """
        for name in ("b.alpha.example", "a.alpha.example"):
            self.session.bind(name)
        self.assertEqual(self.session.binder.releaseAll(), ["b.alpha.example", "a.alpha.example"])
        self.assertEqual((self.registry.routes, self.session.binder.bound), ({}, []))
        self.assertEqual(self.session.binder.releaseAll(), [])


class LogOrderTests(SynchronousTestCase):
    """
    The answer goes out before the change is logged, and the log line can
    be deferred.
    """

    def test_later(self) -> None:
        """
        C{later} is called after C{send}, with the log call and its fields;
        nothing is logged until it runs it.
        """
        events: list[tuple[str, Any]] = []
        binder = HostnameBinder(IDENTITY, object(), Registry())

        def later(f: Callable[..., None], *args: object, **kwargs: object) -> None:
            events.append(("later", kwargs))

        def send(answer: domish.Element) -> None:
            events.append(("send", answer["type"]))

        binder.handle(request("chat.alpha.example"), send, later)
        binder.handle(request("beta.example"), send, later)
        self.assertEqual(
            events,
            [
                ("send", "result"),
                ("later", {"identity": IDENTITY, "action": "bound", "hostname": "chat.alpha.example"}),
                ("send", "error"),
                ("later", {"identity": IDENTITY, "action": "bind", "condition": "not-allowed"}),
            ],
        )


class ParseTests(SynchronousTestCase):
    """
    Which stanzas are bind requests.
    """

    def test_requests(self) -> None:
        """
        A bind or unbind child of an IQ set, in either namespace, is a
        request; it parses to its action, namespace and normal hostname.
        """
        for namespace in BIND_NAMESPACES:
            for action in ("bind", "unbind"):
                iq = request("Chat.alpha.example", action, namespace)
                self.assertIs(bindChild(iq), iq.firstChildElement())
                self.assertEqual(
                    parseBindRequest(iq), BindRequest(action, namespace, "chat.alpha.example")
                )

    def test_notRequests(self) -> None:
        """
        An IQ get, another stanza, another namespace or a payload that is
        not the IQ's first child is no bind request.
        """
        for xml in (
            f"<iq type='get' id='1'><bind xmlns='{NS_COMPONENT_0}'><hostname>a</hostname></bind></iq>",
            f"<iq type='result' id='1'><bind xmlns='{NS_COMPONENT_0}'><hostname>a</hostname></bind></iq>",
            f"<message><bind xmlns='{NS_COMPONENT_0}'><hostname>a</hostname></bind></message>",
            "<iq type='set' id='1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
            f"<iq type='set' id='1'><query xmlns='urn:x'/><bind xmlns='{NS_COMPONENT_0}'/></iq>",
            "<iq type='set' id='1'/>",
        ):
            stanza = parse(xml)
            self.assertIsNone(bindChild(stanza), xml)
            self.assertIsNone(parseBindRequest(stanza), xml)


class FakeStream:
    """
    The C{xmlstream} of a session, as L{BindFeature} uses it.
    """

    def __init__(self) -> None:
        self.sent: list[domish.Element] = []

    def send(self, element: domish.Element) -> None:
        self.sent.append(element)


class FakeSession:
    def __init__(self) -> None:
        self.xmlstream = FakeStream()

    def send(self, element: Any) -> None:
        self.xmlstream.send(element)

    def afterRead(self, f: Any, *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)


class BindFeatureTests(SynchronousTestCase):
    """
    L{BindFeature}: the bind feature of receiving negotiation, one per
    namespace, over the session's L{HostnameBinder}.
    """

    def setUp(self) -> None:
        self.registry = Registry()
        self.session = FakeSession()
        self.binder = HostnameBinder(IDENTITY, self.session, self.registry)
        self.features = bindFeatures(lambda session: self.binder)

    def test_interface(self) -> None:
        """
        Each feature provides L{IReceivingFeature}; C{urn:xmpp:component:0}
        comes first.
        """
        self.assertEqual([f.namespace for f in self.features], [NS_COMPONENT_0, NS_COMPONENT_TMP])
        for feature in self.features:
            self.assertTrue(verifyObject(IReceivingFeature, feature))

    def test_featureElement(self) -> None:
        """
        The feature is advertised with C{<required/>}.
        """
        self.assertEqual(
            [f.featureElement(self.session).toXml() for f in self.features],  # type: ignore[union-attr]
            [f"<bind xmlns='{ns}'><required/></bind>" for ns in BIND_NAMESPACES],
        )

    def test_requiredUntilBound(self) -> None:
        """
        Binding is required until one name is bound, and again once the
        session unbound every name.
        """
        zero, tmp = self.features
        self.assertTrue(zero.isRequired(self.session))
        self.assertTrue(zero.handleElement(self.session, request("a.alpha.example")))
        self.assertFalse(zero.isRequired(self.session) or tmp.isRequired(self.session))
        zero.handleElement(self.session, request("a.alpha.example", "unbind"))
        self.assertTrue(zero.isRequired(self.session))

    def test_handlesOwnNamespace(self) -> None:
        """
        Each feature answers the requests of its namespace, on the
        session's stream, and leaves the others (and other stanzas) alone.
        """
        zero, tmp = self.features
        tmpRequest = request("a.alpha.example", namespace=NS_COMPONENT_TMP)
        self.assertFalse(zero.handleElement(self.session, tmpRequest))
        self.assertFalse(tmp.handleElement(self.session, parse("<iq type='get' id='q'/>")))
        self.assertEqual(self.session.xmlstream.sent, [])
        self.assertTrue(tmp.handleElement(self.session, tmpRequest))
        [answer] = self.session.xmlstream.sent
        self.assertEqual((answer["type"], answer.children), ("result", []))
        self.assertIs(self.registry.routes["a.alpha.example"], self.session)

    def test_refusalAnswered(self) -> None:
        """
        A refused request is answered with its error on the stream, and
        handled (not passed on).
        """
        zero, _ = self.features
        self.assertTrue(zero.handleElement(self.session, request("beta.example")))
        [answer] = self.session.xmlstream.sent
        self.assertEqual(condition(answer), ("cancel", "not-allowed"))

    def test_featureOf(self) -> None:
        """
        A feature made directly serves the namespace it is given.
        """
        feature = BindFeature(NS_COMPONENT_TMP, lambda session: self.binder)
        element = feature.featureElement(self.session)
        assert element is not None
        self.assertEqual(element.uri, NS_COMPONENT_TMP)
