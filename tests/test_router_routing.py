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
