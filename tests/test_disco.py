# -*- test-case-name: tests.test_disco -*-
"""
Tests for L{xmppcomp.disco}.
"""

from __future__ import annotations

# xmppcomp.disco imports the wokkel shim before wokkel; keep it first.
from xmppcomp.disco import (  # isort: skip
    ComponentIdentity,
    defaultIdentities,
    discoHandlers,
)

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.protocols.jabber.jid import JID
from wokkel.disco import (
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    DiscoClientProtocol,
    DiscoFeature,
    DiscoHandler,
    DiscoIdentity,
    DiscoInfo,
    DiscoItem,
    DiscoItems,
)
from wokkel.generic import XmlPipe, parseXml
from wokkel.iwokkel import IDisco
from wokkel.ping import NS_PING, PingHandler
from wokkel.subprotocols import StreamManager, XMPPHandler
from zope.interface import implementer
from zope.interface.verify import verifyObject

COMP = "comp.example.org"
MUC = "muc.example.org"
OTHER = "other.example.org"
USER = JID("user@example.org/r")

#: Every known hostname declares these.
DISCO_FEATURES = {NS_DISCO_INFO, NS_DISCO_ITEMS}


def _identities(*identities: DiscoIdentity) -> dict[tuple[str, str], str | None]:
    """
    Identities as L{DiscoInfo} holds them.

    @param identities: Identities.
    @return: A mapping of (category, type) to name.
    """
    return {(i.category, i.type): i.name for i in identities}


def _condition(failure: Any) -> str:
    """
    The condition of a stanza error failure.

    @param failure: A failure wrapping a L{StanzaError}.
    @return: Its condition.
    """
    return str(failure.check(StanzaError) and failure.value.condition)


class _NoBootstrap:
    """
    A stand-in for the factory a L{StreamManager} adds its bootstraps to.
    """

    def addBootstrap(self, event: str, fn: Any) -> None:
        """
        Ignore a bootstrap: the stream is connected and initialized by hand.
        """


def _initializedManager(xs: Any, clock: Clock) -> StreamManager:
    """
    A stream manager on an end of an L{XmlPipe}, connected and initialized,
    as wokkel's own C{TestableStreamManager} does.

    @param xs: One end of the pipe.
    @param clock: The manager's clock (its IQ timeouts).
    @return: The manager.
    """
    manager = StreamManager(_NoBootstrap(), reactor=clock)
    manager._connected(xs)
    manager._authd(xs)
    return manager


@implementer(IDisco)
class _NodeHandler(XMPPHandler):
    """
    A sibling handler that declares one node of every hostname.

    @ivar node: The node.
    """

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def getDiscoInfo(
        self, requestor: JID, target: JID, nodeIdentifier: str = ""
    ) -> list[Any]:
        if nodeIdentifier == self.node:
            return [DiscoIdentity("hierarchy", "leaf"), DiscoFeature("urn:x:node")]
        return []

    def getDiscoItems(
        self, requestor: JID, target: JID, nodeIdentifier: str = ""
    ) -> list[DiscoItem]:
        if nodeIdentifier == self.node:
            return [DiscoItem(JID("leaf@" + target.host), name="leaf")]
        return []


class ComponentIdentityTests(SynchronousTestCase):
    """
    Tests for L{ComponentIdentity} on its own.
    """

    def setUp(self) -> None:
        self.conference = DiscoIdentity("conference", "text", "Rooms")
        self.identity = ComponentIdentity(
            {COMP: [], MUC: [self.conference]},
            items={MUC: [DiscoItem(JID("room@" + MUC), name="Room")]},
        )

    def test_providesIDisco(self) -> None:
        """
        L{ComponentIdentity} provides wokkel's C{IDisco}.
        """
        self.assertTrue(verifyObject(IDisco, self.identity))

    def test_infoPerHostname(self) -> None:
        """
        Each hostname gets its own identities, and the disco features.
        """
        info = self.identity.getDiscoInfo(USER, JID(MUC), "")
        self.assertEqual(info[0], self.conference)
        self.assertEqual(len(info), 3)
        self.assertEqual(set(info[1:]), DISCO_FEATURES)

    def test_defaultIdentity(self) -> None:
        """
        A hostname given no identities gets the default, by default
        C{component/generic}.
        """
        info = self.identity.getDiscoInfo(USER, JID(COMP), "")
        identities = [i for i in info if isinstance(i, DiscoIdentity)]
        self.assertEqual(
            _identities(*identities), _identities(*defaultIdentities())
        )
        self.assertEqual(_identities(*identities), {("component", "generic"): None})

    def test_customDefault(self) -> None:
        """
        The default identities can be given.
        """
        gateway = DiscoIdentity("gateway", "irc", "IRC")
        identity = ComponentIdentity({COMP: ()}, default=[gateway])
        self.assertEqual(identity.getDiscoInfo(USER, JID(COMP), "")[0], gateway)

    def test_hostnamesNormalized(self) -> None:
        """
        Hostnames are matched as JID parsing normalizes them.
        """
        identity = ComponentIdentity({"Comp.Example.ORG": []})
        self.assertEqual(identity.hostnames, frozenset({COMP}))
        self.assertTrue(identity.getDiscoInfo(USER, JID("COMP.example.org"), ""))

    def test_unknownHostname(self) -> None:
        """
        Asking about a hostname not given, or with no C{to}, fails with
        C{item-not-found}.
        """
        for target in (JID(OTHER), JID("user@" + OTHER), None):
            for method in (self.identity.getDiscoInfo, self.identity.getDiscoItems):
                error = self.assertRaises(StanzaError, method, USER, target, "")
                self.assertEqual(error.condition, "item-not-found")

    def test_itemsPerHostname(self) -> None:
        """
        Each hostname has its own items; none by default.
        """
        items = self.identity.getDiscoItems(USER, JID(MUC), "")
        self.assertEqual(
            [(i.entity, i.name) for i in items], [(JID("room@" + MUC), "Room")]
        )
        self.assertEqual(self.identity.getDiscoItems(USER, JID(COMP), ""), [])

    def test_nodesLeftToOthers(self) -> None:
        """
        Nothing is declared about a node of a known hostname.
        """
        self.assertEqual(self.identity.getDiscoInfo(USER, JID(MUC), "n"), [])
        self.assertEqual(self.identity.getDiscoItems(USER, JID(MUC), "n"), [])

    def test_addressesLeftToOthers(self) -> None:
        """
        Nothing is declared about an address with a localpart or a resource
        at a known hostname: it is not the component.
        """
        for target in (JID("room@" + MUC), JID(MUC + "/res")):
            self.assertEqual(self.identity.getDiscoInfo(USER, target, ""), [])
            self.assertEqual(self.identity.getDiscoItems(USER, target, ""), [])

    def test_addAndRemoveHostname(self) -> None:
        """
        A hostname added later is answered for (with the default identities
        if given none), and a removed one no longer is; removing an unknown
        one does nothing.
        """
        self.identity.addHostname("New.example.org")
        self.assertIn("new.example.org", self.identity.hostnames)
        self.assertEqual(
            self.identity.getDiscoInfo(USER, JID("new.example.org"), "")[0].category,
            "component",
        )
        self.identity.removeHostname(MUC)
        self.identity.removeHostname(OTHER)
        self.assertEqual(self.identity.hostnames, frozenset({COMP, "new.example.org"}))
        self.assertRaises(
            StanzaError, self.identity.getDiscoInfo, USER, JID(MUC), ""
        )

    def test_notAHostname(self) -> None:
        """
        A hostname that is a JID with a localpart or resource, or no JID at
        all, is refused.
        """
        for bad in ("user@" + COMP, COMP + "/res", "a@b@c", ""):
            self.assertRaises(ValueError, ComponentIdentity, {bad: []})
            self.assertRaises(ValueError, self.identity.addHostname, bad)

    def test_itemsWithoutIdentities(self) -> None:
        """
        Items for a hostname not among the identities are refused.
        """
        error = self.assertRaises(
            ValueError,
            ComponentIdentity,
            {COMP: []},
            items={OTHER: [DiscoItem(JID(OTHER))]},
        )
        self.assertIn(OTHER, str(error))

    def test_noIdentity(self) -> None:
        """
        A hostname that would have no identity (given none, with an empty
        default) is refused: XEP-0030 requires one.
        """
        self.assertRaises(ValueError, ComponentIdentity, {COMP: []}, default=[])


class DiscoHandlersTests(SynchronousTestCase):
    """
    Tests for L{discoHandlers}, answering requests from wokkel's disco
    client over an in-memory stream.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        pipe = XmlPipe()
        self.server = _initializedManager(pipe.sink, self.clock)
        client = _initializedManager(pipe.source, self.clock)
        self.client = DiscoClientProtocol()
        self.client.setHandlerParent(client)
        self.conference = DiscoIdentity("conference", "text", "Rooms")
        self.handlers = discoHandlers(
            {COMP: [], MUC: [self.conference]},
            items={MUC: [DiscoItem(JID("room@" + MUC), name="Room")]},
        )
        for handler in self.handlers:
            handler.setHandlerParent(self.server)
        PingHandler().setHandlerParent(self.server)

    def info(self, target: str, node: str = "") -> DiscoInfo:
        """
        Ask for disco#info and return the answer.
        """
        return self.successResultOf(
            self.client.requestInfo(JID(target), node, sender=USER)
        )

    def items(self, target: str, node: str = "") -> DiscoItems:
        """
        Ask for disco#items and return the answer.
        """
        return self.successResultOf(
            self.client.requestItems(JID(target), node, sender=USER)
        )

    def test_handlers(self) -> None:
        """
        L{discoHandlers} returns a wokkel C{DiscoHandler} and a
        L{ComponentIdentity}.
        """
        self.assertEqual(
            [type(h) for h in self.handlers], [DiscoHandler, ComponentIdentity]
        )

    def test_identitiesPerHostname(self) -> None:
        """
        Each hostname answers its own identities.
        """
        self.assertEqual(self.info(MUC).identities, _identities(self.conference))
        self.assertEqual(
            self.info(COMP).identities, {("component", "generic"): None}
        )

    def test_featuresFromSiblings(self) -> None:
        """
        The features the other registered handlers declare (here
        C{urn:xmpp:ping}, from wokkel's C{PingHandler}) come in the same
        answer as the identity and the disco features.
        """
        for hostname in (COMP, MUC):
            self.assertEqual(
                self.info(hostname).features, DISCO_FEATURES | {NS_PING}
            )

    def test_unknownHostname(self) -> None:
        """
        A request to a hostname the component was not given fails with
        C{item-not-found}, although a sibling declares a feature there.
        """
        for request in (self.client.requestInfo, self.client.requestItems):
            failure = self.failureResultOf(request(JID(OTHER), "", USER), StanzaError)
            self.assertEqual(_condition(failure), "item-not-found")

    def test_itemsPerHostname(self) -> None:
        """
        Each hostname answers its own items.
        """
        self.assertEqual(
            [(i.entity, i.name) for i in self.items(MUC)],
            [(JID("room@" + MUC), "Room")],
        )
        self.assertEqual(list(self.items(COMP)), [])

    def test_unknownNode(self) -> None:
        """
        disco#info for a node nobody declares fails with C{item-not-found}
        (wokkel's rule); disco#items for it answers an empty list (wokkel
        does not tell an empty node from an unknown one).
        """
        failure = self.failureResultOf(
            self.client.requestInfo(JID(COMP), "nowhere", USER), StanzaError
        )
        self.assertEqual(_condition(failure), "item-not-found")
        items = self.items(COMP, "nowhere")
        self.assertEqual((items.nodeIdentifier, list(items)), ("nowhere", []))

    def test_nodeFromSibling(self) -> None:
        """
        A node another handler declares is answered with that handler's
        info and items only: the hostname's identity is not mixed in.
        """
        _NodeHandler("leaves").setHandlerParent(self.server)
        info = self.info(MUC, "leaves")
        self.assertEqual(
            (info.nodeIdentifier, info.identities, info.features),
            ("leaves", {("hierarchy", "leaf"): None}, {"urn:x:node"}),
        )
        self.assertEqual(
            [i.entity for i in self.items(MUC, "leaves")], [JID("leaf@" + MUC)]
        )

    def test_wire(self) -> None:
        """
        The answer on the wire is a result from the hostname asked to the
        asker, with the identity, the features and the request's id.
        """
        sent: list[Any] = []
        self.server.xmlstream.send = sent.append
        self.server.xmlstream.dispatch(
            parseXml(
                f"<iq type='get' id='i1' from='{USER.full()}' to='{COMP}'>"
                f"<query xmlns='{NS_DISCO_INFO}'/></iq>"
            )
        )
        [response] = sent
        self.assertEqual(
            (response["type"], response["id"], response["from"], response["to"]),
            ("result", "i1", COMP, USER.full()),
        )
        self.assertEqual(response.query.uri, NS_DISCO_INFO)
        identity = next(response.query.elements(NS_DISCO_INFO, "identity"))
        self.assertEqual(
            (identity["category"], identity["type"], identity.getAttribute("name")),
            ("component", "generic", None),
        )
        self.assertEqual(
            {f["var"] for f in response.query.elements(NS_DISCO_INFO, "feature")},
            DISCO_FEATURES | {NS_PING},
        )


class WokkelBehaviourTests(SynchronousTestCase):
    """
    What wokkel's C{DiscoHandler} does without L{ComponentIdentity}: the
    reason it makes unknown hostnames fail.
    """

    def test_unknownHostnameWithoutIdentity(self) -> None:
        """
        With only a feature-declaring sibling, wokkel answers disco#info to
        any hostname with a result carrying that feature and no identity,
        rather than C{item-not-found}.
        """
        clock = Clock()
        pipe = XmlPipe()
        server = _initializedManager(pipe.sink, clock)
        DiscoHandler().setHandlerParent(server)
        PingHandler().setHandlerParent(server)
        client = DiscoClientProtocol()
        client.setHandlerParent(_initializedManager(pipe.source, clock))
        info = self.successResultOf(client.requestInfo(JID(OTHER), "", USER))
        self.assertEqual((info.identities, info.features), ({}, {NS_PING}))
