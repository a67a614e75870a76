# -*- test-case-name: tests.test_router_routing -*-
"""
The router's routing table and routing decisions, as pure logic: no
sockets, no clock. The service (L{xmppcomp.router.service}) applies the
decisions to streams.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from enum import Enum
from hashlib import blake2b
from typing import Final, Generic, Hashable, Literal, TypeVar

import attrs
from twisted.words.protocols.jabber.error import StanzaError
from twisted.words.xish import domish

from xmppcomp._memo import BoundedMemo
from xmppcomp.jids import domainOf

R = TypeVar("R", bound=Hashable)


#: How many addresses a L{RoutingTable} remembers the domain of
#: (L{RoutingTable.domainOf}).
DOMAINS_KEPT = 4096
#: Longer addresses are not remembered.
DOMAIN_KEY_LENGTH = 512
#: IQ requests one route sent from shared names whose answers are awaited
#: (L{RoutingTable.recordRequest}); beyond, the oldest is forgotten. The
#: same bound as the requests tracked to a session
#: (L{xmppcomp.router.service.MAX_PENDING_IQS}).
MAX_SENT_PER_ROUTE = 10000
#: Conversations (shared name and bare JID) a L{RoutingTable} remembers the
#: route of, all shared names together; emptied when full, and when a
#: shared name gains or loses a route (the choice is recomputed, to the
#: same route while the routes stay).
CONVERSATIONS_KEPT = 4096


class _Unknown(Enum):
    """The sentinel of L{_UNKNOWN} (an enum member, so that C{is} narrows)."""

    UNKNOWN = "unknown"


#: Not remembered.
_UNKNOWN: Final[Literal[_Unknown.UNKNOWN]] = _Unknown.UNKNOWN


class _Departed(Enum):
    """The sentinel of L{DEPARTED} (an enum member, so that C{is} narrows)."""

    DEPARTED = "departed"


#: What L{RoutingTable.routeFor} answers for an IQ result or error to a
#: request that a route of a shared name sent and that left since: nobody
#: is waiting for it.
DEPARTED: Final[Literal[_Departed.DEPARTED]] = _Departed.DEPARTED


def conversationOf(sender: str) -> str:
    """
    The conversation a stanza from C{sender} belongs to, for balancing a
    shared name: the sender's bare JID (without its resource), lowercased
    (a cheap stand-in for the JID's normal form: what differs only in case
    is one conversation).
    """
    return sender.partition("/")[0].lower()


def rendezvousScore(conversation: str, token: bytes) -> int:
    """
    The score of a route for a conversation (rendezvous hashing): BLAKE2b
    of the conversation, keyed with the route's token, as a 64-bit number.
    The same on every run and every Python (unlike C{hash()}, which
    C{PYTHONHASHSEED} salts).
    """
    digest = blake2b(conversation.encode("utf-8", "surrogatepass"), digest_size=8, key=token).digest()
    return int.from_bytes(digest, "big")


class SharedRoute(Generic[R]):
    """
    A shared name: one name that several routes of the same owner (the
    same authenticated identity, see L{RoutingTable.claim}) have bound.

    Stanzas to the name are balanced by conversation (L{conversationOf}:
    the sender's bare JID) with rendezvous hashing: each route has a token
    (L{rendezvousScore}), and a conversation goes to the route with the
    highest score. So a conversation stays on one route while the routes
    stay; when a route leaves, only the conversations it had move (each to
    the remaining route that scores highest), and a route that joins takes
    about its share from each of the others.

    @ivar hostname: the name.
    @ivar owner: who bound it: routes of another owner cannot join.
    @ivar routes: the routes, in the order they joined.
    @ivar sent: IQ requests the routes sent from the name and not answered
        yet, by C{(from, id)}: the route that sent each, which gets its
        answer (see L{RoutingTable.recordRequest}).
    """

    def __init__(self, hostname: str, owner: Hashable) -> None:
        self.hostname = hostname
        self.owner = owner
        self.routes: list[R] = []
        self._tokens: dict[R, bytes] = {}
        self.sent: dict[tuple[str, str], R] = {}

    def add(self, route: R, token: bytes) -> None:
        """
        Add C{route}, with its rendezvous C{token} (unique in the table).
        """
        self.routes.append(route)
        self._tokens[route] = token

    def remove(self, route: R) -> None:
        """
        Remove C{route}: its conversations move to the others.
        """
        self.routes.remove(route)
        del self._tokens[route]

    def pick(self, conversation: str) -> R:
        """
        The route of C{conversation} (see L{SharedRoute} and
        L{conversationOf}): the highest scoring. There must be a route.
        """
        tokens = self._tokens
        return max(self.routes, key=lambda route: rendezvousScore(conversation, tokens[route]))

    def __contains__(self, route: object) -> bool:
        return route in self._tokens

    def __len__(self) -> int:
        return len(self.routes)


class RoutingTable(Generic[R]):
    """
    Bound hostname to route (a session). A name has one route, or, if it
    is shared (an opt-in per name, see C{shareable}), one or more routes of
    one owner (a L{SharedRoute}); a route may have many names.

    Shared names are kept apart from the others: the table of unshared
    names (read by L{boundRoute} on every routed stanza) is what it would
    be without them.

    @ivar domainOf: L{xmppcomp.jids.domainOf} (the package's one rule for
        names), remembered: the addresses seen lately and
        their domains (every stanza names two, and the same few over and
        over). Emptied when L{DOMAINS_KEPT} are kept; only addresses of at
        most L{DOMAIN_KEY_LENGTH} characters are kept, since they come from
        the wire.
    @ivar maxSent: see L{recordRequest}.
    @ivar _choices: the route of each conversation with a shared name seen
        lately, by C{(name, bare JID)}; at most L{CONVERSATIONS_KEPT} (of
        bare JIDs of at most L{DOMAIN_KEY_LENGTH} characters), for all
        shared names together, so that the memory is bounded however many
        names are shared.
    @ivar _orphaned: the C{(from, id)} of requests sent from shared names
        whose route left or unbound the name: their answers are dropped
        (L{DEPARTED}). At most L{maxSent}, all names together, the oldest
        forgotten first (its answer is then balanced as any stanza).
    """

    def __init__(self, shareable: Callable[[str], bool] | None = None, maxSent: int = MAX_SENT_PER_ROUTE) -> None:
        """
        @param shareable: whether several routes of one owner may bind a
            name (C{None}: no name is shared).
        @param maxSent: see L{recordRequest}.
        """
        self._routes: dict[str, R] = {}
        self._shared: dict[str, SharedRoute[R]] = {}
        self._names: dict[R, set[str]] = {}
        self._shareable = shareable
        self._sentBy: dict[R, dict[tuple[str, str], SharedRoute[R]]] = {}
        self._tokens = 0
        self._choices: dict[tuple[str, str], R] = {}
        self._orphaned: dict[tuple[str, str], None] = {}
        self.maxSent = maxSent
        self.domainOf: BoundedMemo[str, str | None] = BoundedMemo(
            domainOf, DOMAINS_KEPT, DOMAIN_KEY_LENGTH
        )

    def claim(self, hostname: str, route: R, owner: Hashable = None) -> bool:
        """
        Route C{hostname} to C{route}.

        @param owner: who C{route} is (such as its authenticated identity):
            if C{hostname} is shareable and bound already, C{route} joins
            its routes when they have the same owner. C{None}: C{route}
            never shares.
        @return: C{False} if the name is bound already (to any route, or,
            if shared, to routes of another owner, or to C{route} itself).
        """
        if hostname in self._routes:
            return False
        shared = self._shared.get(hostname)
        if shared is None:
            if owner is None or self._shareable is None or not self._shareable(hostname):
                self._routes[hostname] = route
                self._names.setdefault(route, set()).add(hostname)
                return True
            shared = self._shared[hostname] = SharedRoute(hostname, owner)
        elif shared.owner != owner or route in shared:
            return False
        self._tokens += 1
        shared.add(route, b"%d" % (self._tokens,))
        self._choices.clear()
        self._names.setdefault(route, set()).add(hostname)
        return True

    def release(self, hostname: str, route: R) -> bool:
        """
        Stop routing C{hostname} to C{route}. For a shared name, the
        requests C{route} sent from it are orphaned (their answers will be
        dropped, L{DEPARTED}), and the name stays bound while it has other
        routes.

        @return: whether it was routed there.
        """
        if self._routes.get(hostname) is route:
            del self._routes[hostname]
        else:
            shared = self._shared.get(hostname)
            if shared is None or route not in shared:
                return False
            shared.remove(route)
            self._choices.clear()
            sent = self._sentBy.get(route)
            if sent:
                for key, group in list(sent.items()):
                    if group is shared:
                        del sent[key]
                        if shared.sent.get(key) is route:
                            del shared.sent[key]
                            self._orphan(key)
                if not sent:
                    del self._sentBy[route]
            if not shared.routes:
                del self._shared[hostname]
        names = self._names[route]
        names.discard(hostname)
        if not names:
            del self._names[route]
        return True

    def _orphan(self, key: tuple[str, str]) -> None:
        """
        The request C{key} lost its route: drop its answer when it comes.
        """
        orphaned = self._orphaned
        if len(orphaned) >= self.maxSent:
            del orphaned[next(iter(orphaned))]
        orphaned[key] = None

    def lookup(self, hostname: str) -> R | None:
        """
        The route of a hostname that is not shared, or C{None} (for a name
        not bound, and for a shared name: see L{sharedRoute} and
        L{routeFor}).
        """
        return self._routes.get(hostname)

    def sharedRoute(self, hostname: str) -> SharedRoute[R] | None:
        """
        The routes of a bound shared name, or C{None}.
        """
        return self._shared.get(hostname)

    def routesOf(self, hostname: str) -> tuple[R, ...]:
        """
        Every route of C{hostname}: one for an unshared name, one or more
        for a shared one, none for a name not bound.
        """
        route = self._routes.get(hostname)
        if route is not None:
            return (route,)
        shared = self._shared.get(hostname)
        return tuple(shared.routes) if shared is not None else ()

    def sharedNames(self) -> dict[str, int]:
        """
        The bound shared names, and how many routes each has.
        """
        return {hostname: len(shared) for hostname, shared in self._shared.items()}

    def routeFor(self, hostname: str, stanza: domish.Element) -> R | Literal[_Departed.DEPARTED] | None:
        """
        The route that gets C{stanza}, addressed to C{hostname}: its route,
        for a name that is not shared; for a shared name, the route that
        sent the request an IQ result or error answers (L{recordRequest};
        L{DEPARTED} if that route left), else the route of the sender's
        conversation (L{SharedRoute.pick}). C{None} if the name is not
        bound.
        """
        route = self._routes.get(hostname)
        if route is not None:
            return route
        shared = self._shared.get(hostname)
        if shared is None:
            return None
        attributes = stanza.attributes
        if stanza.name == "iq" and attributes.get("type") in ("result", "error"):
            key = (attributes.get("to", ""), attributes.get("id", ""))
            asker = shared.sent.pop(key, None)
            if asker is not None:
                sent = self._sentBy[asker]
                del sent[key]
                if not sent:
                    del self._sentBy[asker]
                return asker
            if key in self._orphaned:
                del self._orphaned[key]
                return DEPARTED
        conversation = conversationOf(attributes.get("from", ""))
        key = (hostname, conversation)
        choices = self._choices
        chosen = choices.get(key)
        if chosen is None:
            chosen = shared.pick(conversation)
            if len(conversation) <= DOMAIN_KEY_LENGTH:
                if len(choices) >= CONVERSATIONS_KEPT:
                    choices.clear()
                choices[key] = chosen
        return chosen

    def recordRequest(self, route: R, hostname: str, iq: domish.Element) -> None:
        """
        C{route} sent the IQ request C{iq} from C{hostname}: if that name
        is shared, remember who sent it, by C{(from, id)}, so that its
        answer (an IQ addressed to that C{from} with that C{id}) goes back
        to C{route} (L{routeFor}) rather than to the route of the
        answerer's conversation.

        At most L{maxSent} requests are remembered per route (the same
        bound as the requests tracked to a session); beyond, the oldest is
        forgotten (its answer, if it ever comes, is balanced as any
        stanza). Remembered requests go when answered, and when the route
        releases the name.
        """
        shared = self._shared.get(hostname)
        if shared is None:
            return
        key = (iq.attributes["from"], iq.attributes.get("id", ""))
        sent = self._sentBy.get(route)
        if sent is None:
            sent = self._sentBy[route] = {}
        elif len(sent) >= self.maxSent:
            oldest = next(iter(sent))
            group = sent.pop(oldest)
            if group.sent.get(oldest) is route:
                del group.sent[oldest]
        previous = shared.sent.get(key)
        if previous is not None and previous is not route:
            # The same (from, id) from another route: the latest wins.
            theirs = self._sentBy[previous]
            del theirs[key]
            if not theirs:
                del self._sentBy[previous]
        sent[key] = shared
        shared.sent[key] = route

    def awaiting(self, route: R) -> int:
        """
        How many requests C{route} sent from shared names are remembered
        (see L{recordRequest}).
        """
        return len(self._sentBy.get(route, ()))

    def namesOf(self, route: R) -> frozenset[str]:
        """
        The names routed to C{route}.
        """
        return frozenset(self._names.get(route, ()))

    def __len__(self) -> int:
        return len(self._routes) + len(self._shared)


@attrs.frozen
class Deliver(Generic[R]):
    """
    Hand the stanza to C{route}.
    """

    route: R
    domain: str


@attrs.frozen
class Local:
    """
    The stanza is addressed to the router itself.
    """


@attrs.frozen
class Bounce:
    """
    Answer the sender with a stanza error of C{condition}.
    """

    condition: str
    text: str | None = None


@attrs.frozen
class Drop:
    """
    Deliver nothing and answer nothing (an undeliverable error or IQ
    result: answering those would loop or break RFC 6120 section 8.2.3);
    the service logs it.
    """

    reason: str


@attrs.frozen
class StreamFault:
    """
    End the sender's stream with the stream error C{condition}.
    """

    condition: str
    text: str


def translateNamespace(element: domish.Element, old: str, new: str) -> None:
    """
    Move a stanza from one stream's content namespace to another's (from
    C{jabber:client} to C{jabber:component:accept} and back), in place:
    the stanza and every descendant in C{old} (such as C{<body/>}) move to
    C{new}; payloads in their own namespaces are left alone.
    """
    stack = [element]
    while stack:
        current = stack.pop()
        if current.uri == old:
            current.uri = new
        if current.defaultUri == old:
            current.defaultUri = new
        stack.extend(child for child in current.children if isinstance(child, domish.Element))


def mayBounce(stanza: domish.Element) -> bool:
    """
    Whether an undeliverable stanza may be answered with an error: never
    an error itself, never an IQ result.
    """
    kind = stanza.getAttribute("type")
    if kind == "error":
        return False
    if stanza.name == "iq" and kind == "result":
        return False
    return True


def sizeAtMost(stanza: domish.Element, limit: int) -> bool:
    """
    Whether C{stanza}, serialised, takes about C{limit} bytes or fewer:
    element names, attributes and text are counted in characters, before
    escaping, and the walk stops as soon as the count passes C{limit}, so
    a large stanza costs no more to judge than a small one. For stanzas
    whose bytes as received are not known (see L{bounceOf}).
    """
    total = 0
    stack: list[domish.Element | str] = [stanza]
    while stack:
        current = stack.pop()
        if isinstance(current, str):
            total += len(current)
        else:
            # <name ...></name>
            total += 2 * len(current.name) + 5
            for key, value in current.attributes.items():
                total += len(key if isinstance(key, str) else key[1]) + len(value) + 4
            stack.extend(current.children)
        if total > limit:
            return False
    return True


def bounceOf(stanza: domish.Element, condition: str, text: str | None, echo: bool) -> domish.Element:
    """
    The error stanza that answers an undeliverable C{stanza} (RFC 6120
    section 8.3): the same kind of stanza from its recipient to its sender,
    with its id, of type C{error}, holding the stanza error C{condition}
    (and C{text}).

    @param echo: whether the original's payload (its children) comes back
        too. Section 8.3.1 lets an error stanza omit it; the router echoes
        small stanzas only (L{RouterLimits.maxBouncePayload
        <xmppcomp.router.config.RouterLimits>}), so that a sender whose large
        stanzas bounce does not get them all back.
    """
    answer = domish.Element((None, stanza.name))
    attributes = stanza.attributes
    sender = attributes.get("from")
    recipient = attributes.get("to")
    stanzaId = attributes.get("id")
    if sender:
        answer["to"] = sender
    if recipient:
        answer["from"] = recipient
    if stanzaId:
        answer["id"] = stanzaId
    answer["type"] = "error"
    if echo:
        answer.children = list(stanza.children)
    answer.addChild(StanzaError(condition, text=text).getElement())
    return answer


def isServed(domain: str, routerDomain: str) -> bool:
    """
    Whether a domain belongs to the router: its own domain or a name below
    it.
    """
    return domain == routerDomain or domain.endswith("." + routerDomain)


def boundRoute(
    stanza: domish.Element,
    senderNames: Collection[str],
    table: RoutingTable[R],
) -> R | None:
    """
    The route of the common case, cheaply: a stanza from a name the sending
    session bound, to a name bound in C{table}. C{None} for anything else,
    which L{decide} then judges (it agrees with this where this answers).
    """
    attributes = stanza.attributes
    sender = attributes.get("from")
    recipient = attributes.get("to")
    if not sender or not recipient:
        return None
    # The table's remembered domains and its routes read directly: this
    # runs once per routed stanza.
    domains = table.domainOf
    known = domains.get
    senderDomain = known(sender, _UNKNOWN)
    if senderDomain is _UNKNOWN:
        senderDomain = domains(sender)
    if senderDomain not in senderNames:
        return None
    domain = known(recipient, _UNKNOWN)
    if domain is _UNKNOWN:
        domain = domains(recipient)
    return table._routes.get(domain) if domain is not None else None


def decide(
    stanza: domish.Element,
    senderNames: Collection[str],
    table: RoutingTable[R],
    routerDomain: str,
) -> Deliver[R] | Local | Bounce | Drop | StreamFault:
    """
    Decide what becomes of a stanza a session sent.

    @param senderNames: the hostnames the sending session has bound.
    @param routerDomain: the router's own domain.
    """
    sender = stanza.getAttribute("from")
    if not sender:
        return StreamFault("improper-addressing", "a stanza from a component needs 'from'")
    domains = table.domainOf
    senderDomain = domains(sender)
    if senderDomain is None or senderDomain not in senderNames:
        return StreamFault(
            "invalid-from",
            "%s is not a hostname bound by this session" % (sender,),
        )
    recipient = stanza.getAttribute("to")
    if not recipient:
        return StreamFault("improper-addressing", "a stanza from a component needs 'to'")
    domain = domains(recipient)
    if domain is None:
        return _undeliverable(stanza, "jid-malformed", "malformed 'to'")
    route = table.routeFor(domain, stanza)
    if route is DEPARTED:
        return Drop(
            "an answer to a request of a session of %s that left (%s)" % (domain, stanza.getAttribute("id"))
        )
    if route is not None:
        return Deliver(route, domain)
    if domain == routerDomain:
        return Local()
    if isServed(domain, routerDomain):
        return _undeliverable(stanza, "service-unavailable", "%s is not bound" % (domain,))
    return _undeliverable(
        stanza,
        "remote-server-not-found",
        "this router does not connect to other servers (%s)" % (domain,),
    )


def _undeliverable(stanza: domish.Element, condition: str, text: str) -> Bounce | Drop:
    if mayBounce(stanza):
        return Bounce(condition, text)
    return Drop("undeliverable %s (%s): %s" % (stanza.name, stanza.getAttribute("type"), text))
