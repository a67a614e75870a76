# -*- test-case-name: tests.test_router_routing -*-
"""
Tests for L{xmppcomp.router.routing}: the table and the decisions, pure.
"""

from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish

from xmppcomp.ns import NS_CLIENT, NS_COMPONENT_ACCEPT
from xmppcomp.router import routing
from xmppcomp.router.routing import (
    Bounce,
    Deliver,
    Drop,
    Local,
    RoutingTable,
    StreamFault,
    boundRoute,
    decide,
    translateNamespace,
)
from xmppcomp.jids import domainOf


def stanza(name: str = "message", **attrs: str) -> domish.Element:
    element = domish.Element((NS_CLIENT, name))
    for key, value in attrs.items():
        element[key.rstrip("_")] = value
    return element


class DomainOfTests(SynchronousTestCase):
    """
    L{domainOf} extracts the normalised domain of a JID.
    """

    def test_forms(self) -> None:
        """
        Bare domains, bare and full JIDs, case and internationalised names.
        """
        self.assertEqual(domainOf("Chat.Example.NET"), "chat.example.net")
        self.assertEqual(domainOf("user@chat.example.net/res@x/y"), "chat.example.net")
        self.assertEqual(domainOf("Bücher.Example"), "xn--bcher-kva.example")
        self.assertIsNone(domainOf("user@"))
        self.assertIsNone(domainOf("bad..bücher"))


    def test_remembered(self) -> None:
        """
        A routing table remembers the domains of the addresses it saw
        (L{RoutingTable.domainOf}): results, malformed ones too, are the
        same the second time; the memory is bounded, keeps no long
        address, and is the table's own. L{domainOf} itself keeps nothing.
        """
        from xmppcomp.router import routing

        table: RoutingTable[str] = RoutingTable()
        for _ in range(2):
            self.assertEqual(table.domainOf("A@Twice.Example/r"), "twice.example")
            self.assertIsNone(table.domainOf("twice@"))
        self.assertIn("A@Twice.Example/r", table.domainOf)
        self.assertIn("twice@", table.domainOf)
        self.assertNotIn("A@Twice.Example/r", RoutingTable().domainOf)
        for n in range(routing.DOMAINS_KEPT + 10):
            table.domainOf("u@d%d.example" % (n,))
        self.assertLessEqual(len(table.domainOf), routing.DOMAINS_KEPT)
        long = "u" * 600 + "@long.example"
        self.assertEqual(table.domainOf(long), "long.example")
        self.assertNotIn(long, table.domainOf)


class TableTests(SynchronousTestCase):
    """
    L{RoutingTable} keeps one route per name.
    """

    def test_claimRelease(self) -> None:
        """
        A name is claimed once; only its route releases it.
        """
        table: RoutingTable[object] = RoutingTable()
        a, b = object(), object()
        self.assertTrue(table.claim("x.example.net", a))
        self.assertFalse(table.claim("x.example.net", b))
        self.assertFalse(table.release("x.example.net", b))
        self.assertIs(table.lookup("x.example.net"), a)
        self.assertEqual(table.namesOf(a), {"x.example.net"})
        self.assertTrue(table.release("x.example.net", a))
        self.assertIsNone(table.lookup("x.example.net"))
        self.assertEqual((len(table), table.namesOf(a)), (0, frozenset()))


class DecideTests(SynchronousTestCase):
    """
    L{decide} applies the routing rules.
    """

    def setUp(self) -> None:
        self.table: RoutingTable[str] = RoutingTable()
        self.table.claim("b.example.net", "route-b")
        self.names = {"a.example.net"}

    def decide(self, element: domish.Element) -> object:
        return decide(element, self.names, self.table, "example.net")

    def test_deliver(self) -> None:
        """
        A stanza to a bound name, or a JID at it, is delivered there.
        """
        for to in ("b.example.net", "u@B.example.net/r"):
            self.assertEqual(
                self.decide(stanza(from_="x@a.example.net", to=to)),
                Deliver("route-b", "b.example.net"),
            )

    def test_boundRouteAgrees(self) -> None:
        """
        L{boundRoute} finds the route of a stanza from a bound name to a
        bound name, as L{decide} does, and answers C{None} for everything
        else (which L{decide} judges).
        """
        cases = [
            (stanza(from_="x@a.example.net", to="u@B.example.net/r"), "route-b"),
            (stanza(from_="a.example.net", to="b.example.net"), "route-b"),
            (stanza(from_="x@c.example.net", to="b.example.net"), None),
            (stanza(to="b.example.net"), None),
            (stanza(from_="x@a.example.net"), None),
            (stanza(from_="x@a.example.net", to="nobody.example.net"), None),
            (stanza(from_="x@a.example.net", to="example.net"), None),
            (stanza(from_="x@a.example.net", to="bad..b\u00fccher"), None),
            (stanza(from_="x@a.example.net", to="u@"), None),
        ]
        # Addresses not yet remembered by the table, then remembered.
        self.table.domainOf.clear()
        for element, expected in cases + cases:
            self.assertEqual(boundRoute(element, self.names, self.table), expected)
            decision = self.decide(element)
            if expected is not None:
                self.assertEqual(decision, Deliver(expected, "b.example.net"))
            else:
                self.assertNotIsInstance(decision, Deliver)

    def test_local(self) -> None:
        """
        A stanza to the router's domain is the router's own.
        """
        self.assertEqual(self.decide(stanza(from_="a.example.net", to="example.net")), Local())

    def test_addressing(self) -> None:
        """
        A missing C{from} or C{to} is C{improper-addressing}; a C{from}
        outside the session's names is C{invalid-from}.
        """
        self.assertEqual(self.decide(stanza(to="b.example.net")).condition, "improper-addressing")  # type: ignore[attr-defined]
        self.assertEqual(self.decide(stanza(from_="a.example.net")).condition, "improper-addressing")  # type: ignore[attr-defined]
        fault = self.decide(stanza(from_="b.example.net", to="b.example.net"))
        self.assertIsInstance(fault, StreamFault)
        self.assertEqual(fault.condition, "invalid-from")  # type: ignore[attr-defined]

    def test_undeliverable(self) -> None:
        """
        An unbound name under the router's domain is
        C{service-unavailable}, another domain C{remote-server-not-found},
        a malformed address C{jid-malformed}; errors and IQ results are
        dropped, not bounced.
        """
        self.assertEqual(
            self.decide(stanza(from_="a.example.net", to="c.example.net")).condition,  # type: ignore[attr-defined]
            "service-unavailable",
        )
        self.assertEqual(
            self.decide(stanza(from_="a.example.net", to="elsewhere.org")).condition,  # type: ignore[attr-defined]
            "remote-server-not-found",
        )
        self.assertIsInstance(self.decide(stanza(from_="a.example.net", to="u@")), Bounce)
        self.assertIsInstance(
            self.decide(stanza(from_="a.example.net", to="c.example.net", type="error")), Drop
        )
        self.assertIsInstance(
            self.decide(stanza("iq", from_="a.example.net", to="c.example.net", type="result")), Drop
        )
        self.assertIsInstance(
            self.decide(stanza("iq", from_="a.example.net", to="c.example.net", type="get")), Bounce
        )


class TranslateTests(SynchronousTestCase):
    """
    L{translateNamespace} moves a stanza between stream namespaces.
    """

    def test_translate(self) -> None:
        """
        The stanza and its children in the content namespace move; payload
        namespaces stay.
        """
        message = stanza(from_="a.example.net", to="b.example.net")
        message.addElement("body", content="hi")
        message.addElement(("urn:x", "payload")).addElement("inner")
        translateNamespace(message, NS_CLIENT, NS_COMPONENT_ACCEPT)
        self.assertEqual(
            message.toXml(),
            "<message xmlns='jabber:component:accept' from='a.example.net' to='b.example.net'>"
            "<body>hi</body><payload xmlns='urn:x'><inner/></payload></message>",
        )


class BounceOfTests(SynchronousTestCase):
    """
    L{bounceOf} makes the error answer to an undeliverable stanza, with or
    without its payload; L{sizeAtMost} judges a stanza's size cheaply.
    """

    def original(self) -> domish.Element:
        message = stanza(from_="a.example.net/r", to="x@b.example.net", id="m1", type="chat")
        message.addElement("body", content="hello")
        message.addElement(("urn:x", "payload"))
        return message

    def test_withoutPayload(self) -> None:
        """
        Without echo: the same kind of stanza, addressed back, same id, type
        C{error}, and only the error element.
        """
        answer = routing.bounceOf(self.original(), "service-unavailable", "b.example.net is not bound", False)
        self.assertEqual(
            answer.toXml(),
            "<message to='a.example.net/r' from='x@b.example.net' id='m1' type='error'>"
            "<error type='cancel' code='503'>"
            "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>b.example.net is not bound</text>"
            "</error></message>",
        )

    def test_withPayload(self) -> None:
        """
        With echo: the original's children come first, then the error; the
        original is not changed.
        """
        original = self.original()
        before = original.toXml()
        answer = routing.bounceOf(original, "resource-constraint", None, True)
        self.assertEqual([child.name for child in answer.elements()], ["body", "payload", "error"])
        self.assertEqual(answer.error["type"], "wait")
        self.assertEqual(original.toXml(), before)

    def test_missingAttributes(self) -> None:
        """
        Attributes the original lacks are left out, not made empty.
        """
        answer = routing.bounceOf(stanza("presence", to="x.example.net"), "service-unavailable", None, False)
        self.assertEqual(dict(answer.attributes), {"from": "x.example.net", "type": "error"})

    def test_sizeAtMost(self) -> None:
        """
        L{sizeAtMost} counts names, attributes and text, stopping early: a
        stanza is within a limit above its serialised size, and beyond one
        well below it.
        """
        message = self.original()
        message.body.addContent("y" * 5000)
        size = len(message.toXml())
        self.assertTrue(routing.sizeAtMost(message, size + 100))
        self.assertFalse(routing.sizeAtMost(message, size - 200))
        self.assertFalse(routing.sizeAtMost(message, 10))


def shareAll(hostname: str) -> bool:
    """
    Every name under C{shared.example} may be shared.
    """
    return hostname.endswith(".shared.example")


def answer(request: domish.Element, kind: str = "result") -> domish.Element:
    """
    The IQ C{kind} that answers C{request}: addresses swapped, same id.
    """
    return stanza("iq", type=kind, id=request["id"], from_=request["to"], to=request["from"])


class SharedNameTableTests(SynchronousTestCase):
    """
    A L{RoutingTable} with shareable names: several routes of one owner
    bind one name; stanzas are balanced by the sender's bare JID; IQ
    answers go back to the route that asked.
    """

    def setUp(self) -> None:
        self.table: RoutingTable[str] = RoutingTable(shareAll)
        self.assertTrue(self.table.claim("c.shared.example", "a", "owner"))
        self.assertTrue(self.table.claim("c.shared.example", "b", "owner"))
        self.assertTrue(self.table.claim("other.example", "x", "stranger"))

    def test_conflictWithoutOptIn(self) -> None:
        """
        A name that is not shareable has one route, whoever asks; so does
        every name of a table without C{shareable}, and every route claimed
        without an owner.
        """
        self.assertFalse(self.table.claim("other.example", "y", "stranger"))
        plain: RoutingTable[str] = RoutingTable()
        self.assertTrue(plain.claim("c.shared.example", "a", "owner"))
        self.assertFalse(plain.claim("c.shared.example", "b", "owner"))
        self.assertEqual(plain.lookup("c.shared.example"), "a")
        self.assertTrue(self.table.claim("d.shared.example", "a"))
        self.assertFalse(self.table.claim("d.shared.example", "b"))

    def test_otherOwnerConflict(self) -> None:
        """
        A route of another owner cannot join a shared name, and a route
        cannot join twice.
        """
        self.assertFalse(self.table.claim("c.shared.example", "x", "stranger"))
        self.assertFalse(self.table.claim("c.shared.example", "a", "owner"))
        self.assertEqual(self.table.routesOf("c.shared.example"), ("a", "b"))

    def test_shared(self) -> None:
        """
        A shared name has its routes, in order; it is not an unshared
        route (L{RoutingTable.lookup}); it counts once.
        """
        self.assertEqual(self.table.routesOf("c.shared.example"), ("a", "b"))
        self.assertEqual(self.table.routesOf("other.example"), ("x",))
        self.assertEqual(self.table.routesOf("nothing.example"), ())
        self.assertIsNone(self.table.lookup("c.shared.example"))
        self.assertEqual(self.table.sharedNames(), {"c.shared.example": 2})
        self.assertEqual(len(self.table), 2)
        self.assertEqual(self.table.namesOf("a"), frozenset({"c.shared.example"}))

    def conversations(self, count: int = 40) -> dict[str, str]:
        """
        The route of each of C{count} conversations (bare JIDs), checked
        to be the same for every resource and case of the JID.
        """
        chosen: dict[str, str] = {}
        for i in range(count):
            bare = "user%d@users.example" % (i,)
            routes = {
                self.table.routeFor("c.shared.example", stanza(from_=sender, to="c.shared.example"))
                for sender in (bare, bare + "/phone", bare + "/laptop", bare.upper() + "/x")
            }
            self.assertEqual(len(routes), 1, bare)
            (chosen[bare],) = routes  # type: ignore[assignment]
        return chosen

    def test_balanced(self) -> None:
        """
        The stanzas of one bare JID all take one route; both routes get
        conversations; the same on every run (no C{hash()}: the choice does
        not depend on C{PYTHONHASHSEED}).
        """
        chosen = self.conversations()
        counts = {route: list(chosen.values()).count(route) for route in ("a", "b")}
        self.assertTrue(all(counts.values()), counts)
        self.assertEqual(chosen, self.conversations())
        self.assertEqual(routing.rendezvousScore("juliet@capulet.example", b"1"), 18398969122285235540)
        self.assertEqual(routing.rendezvousScore("juliet@capulet.example", b"2"), 3642088058639852450)

    def test_leave(self) -> None:
        """
        When a route leaves, its conversations move to the others, and
        theirs stay; when a route joins, conversations move only to it.
        """
        self.assertTrue(self.table.claim("c.shared.example", "c", "owner"))
        before = self.conversations()
        self.assertEqual(set(before.values()), {"a", "b", "c"})
        self.assertTrue(self.table.release("c.shared.example", "b"))
        after = self.conversations()
        for bare, route in before.items():
            if route != "b":
                self.assertEqual(after[bare], route)
        self.assertEqual(set(after.values()), {"a", "c"})
        self.assertTrue(self.table.claim("c.shared.example", "b", "owner"))
        again = self.conversations()
        for bare, route in again.items():
            self.assertIn(route, (after[bare], "b"))
        self.assertTrue(self.table.release("c.shared.example", "a"))
        self.assertTrue(self.table.release("c.shared.example", "b"))
        self.assertTrue(self.table.release("c.shared.example", "c"))
        self.assertFalse(self.table.release("c.shared.example", "c"))
        self.assertEqual(self.table.routesOf("c.shared.example"), ())
        self.assertEqual(self.table.sharedNames(), {})
        self.assertIsNone(self.table.routeFor("c.shared.example", stanza(from_="u@users.example")))

    def test_answerAffinity(self) -> None:
        """
        The result or error of an IQ request a route sent from a shared
        name goes back to that route, whatever the answerer's conversation
        is balanced to; once.
        """
        requests = []
        for i in range(20):
            route = "ab"[i % 2]
            iq = stanza("iq", type="get", id="q%d" % (i,), from_="c.shared.example", to="user%d@users.example" % (i,))
            self.table.recordRequest(route, "c.shared.example", iq)
            requests.append((route, iq))
        self.assertEqual((self.table.awaiting("a"), self.table.awaiting("b")), (10, 10))
        for i, (route, iq) in enumerate(requests):
            reply = answer(iq, "result" if i % 3 else "error")
            self.assertEqual(self.table.routeFor("c.shared.example", reply), route)
        self.assertEqual((self.table.awaiting("a"), self.table.awaiting("b")), (0, 0))
        # Answered: a second answer is balanced as any stanza.
        sender = requests[0][1]["to"]
        balanced = self.table.routeFor("c.shared.example", stanza(from_=sender))
        self.assertEqual(self.table.routeFor("c.shared.example", answer(requests[0][1])), balanced)

    def test_answerToDeparted(self) -> None:
        """
        An answer to a request of a route that left the shared name is
        L{routing.DEPARTED}, which L{decide} drops; other routes'
        requests are kept.
        """
        fromA = stanza("iq", type="set", id="1", from_="c.shared.example/x", to="u@other.example")
        againA = stanza("iq", type="set", id="3", from_="c.shared.example/x", to="u@other.example")
        fromB = stanza("iq", type="set", id="2", from_="c.shared.example/x", to="u@other.example")
        self.table.recordRequest("a", "c.shared.example", fromA)
        self.table.recordRequest("a", "c.shared.example", againA)
        self.table.recordRequest("b", "c.shared.example", fromB)
        self.table.release("c.shared.example", "a")
        self.assertIs(self.table.routeFor("c.shared.example", answer(fromA)), routing.DEPARTED)
        decision = decide(answer(againA, "error"), ["other.example"], self.table, "example")
        self.assertIsInstance(decision, Drop)
        self.assertEqual(self.table.routeFor("c.shared.example", answer(fromB)), "b")

    def test_recordedBound(self) -> None:
        """
        At most C{maxSent} requests are remembered per route, the oldest
        forgotten first; requests from unshared names are not remembered.
        """
        table: RoutingTable[str] = RoutingTable(shareAll, maxSent=3)
        table.claim("c.shared.example", "a", "owner")
        table.claim("c.shared.example", "b", "owner")
        table.claim("plain.example", "a")
        requests = [
            stanza("iq", type="get", id=str(i), from_="c.shared.example", to="u%d@users.example" % (i,))
            for i in range(5)
        ]
        for iq in requests:
            table.recordRequest("a", "c.shared.example", iq)
        table.recordRequest("a", "plain.example", stanza("iq", type="get", id="p", from_="plain.example", to="x"))
        self.assertEqual(table.awaiting("a"), 3)
        for iq in requests[2:]:
            self.assertEqual(table.routeFor("c.shared.example", answer(iq)), "a")
        self.assertEqual(table.awaiting("a"), 0)

    def test_sameKeyLatestWins(self) -> None:
        """
        Two routes sending the same C{(from, id)}: the answer goes to the
        later one.
        """
        iq = stanza("iq", type="get", id="same", from_="c.shared.example", to="u@users.example")
        self.table.recordRequest("a", "c.shared.example", iq)
        self.table.recordRequest("b", "c.shared.example", iq)
        self.assertEqual((self.table.awaiting("a"), self.table.awaiting("b")), (0, 1))
        self.assertEqual(self.table.routeFor("c.shared.example", answer(iq)), "b")

    def test_choicesBounded(self) -> None:
        """
        The table remembers at most L{routing.CONVERSATIONS_KEPT} choices,
        all shared names together, and none for a bare JID longer than
        L{routing.DOMAIN_KEY_LENGTH}; forgetting changes no choice.
        """
        for name in ("d.shared.example", "e.shared.example"):
            self.table.claim(name, "a", "owner")
            self.table.claim(name, "b", "owner")
        first = self.conversations()
        for i in range(routing.CONVERSATIONS_KEPT):
            for name in ("d.shared.example", "e.shared.example"):
                self.table.routeFor(name, stanza(from_="u%d@users.example" % (i,), to=name))
                self.assertLessEqual(len(self.table._choices), routing.CONVERSATIONS_KEPT)
        self.assertEqual(self.conversations(), first)
        self.table.routeFor("c.shared.example", stanza(from_="x" * (routing.DOMAIN_KEY_LENGTH + 1)))
        self.assertNotIn(("c.shared.example", "x" * (routing.DOMAIN_KEY_LENGTH + 1)), self.table._choices)

    def test_decide(self) -> None:
        """
        L{boundRoute}, the fast path, leaves shared names to L{decide},
        which delivers to the route of the conversation.
        """
        message = stanza(from_="u@other.example/r", to="c.shared.example")
        self.assertIsNone(boundRoute(message, ["other.example"], self.table))
        expected = self.table.routeFor("c.shared.example", message)
        self.assertEqual(
            decide(message, ["other.example"], self.table, "example"), Deliver(expected, "c.shared.example")
        )
