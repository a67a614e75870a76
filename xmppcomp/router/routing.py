# -*- test-case-name: tests.test_router_routing -*-
"""
The router's routing table and routing decisions, as pure logic: no
sockets, no clock. The service (L{xmppcomp.router.service}) applies the
decisions to streams.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import Enum
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
class _Unknown(Enum):
    """The sentinel of L{_UNKNOWN} (an enum member, so that C{is} narrows)."""

    UNKNOWN = "unknown"


#: Not remembered.
_UNKNOWN: Final[Literal[_Unknown.UNKNOWN]] = _Unknown.UNKNOWN


class RoutingTable(Generic[R]):
    """
    Bound hostname to route (a session). A name has at most one route; a
    route may have many names.

    @ivar domainOf: L{xmppcomp.jids.domainOf} (the package's one rule for
        names), remembered: the addresses seen lately and
        their domains (every stanza names two, and the same few over and
        over). Emptied when L{DOMAINS_KEPT} are kept; only addresses of at
        most L{DOMAIN_KEY_LENGTH} characters are kept, since they come from
        the wire.
    """

    def __init__(self) -> None:
        self._routes: dict[str, R] = {}
        self._names: dict[R, set[str]] = {}
        self.domainOf: BoundedMemo[str, str | None] = BoundedMemo(
            domainOf, DOMAINS_KEPT, DOMAIN_KEY_LENGTH
        )

    def claim(self, hostname: str, route: R) -> bool:
        """
        Route C{hostname} to C{route}.

        @return: C{False} if the name is bound already (to any route).
        """
        if hostname in self._routes:
            return False
        self._routes[hostname] = route
        self._names.setdefault(route, set()).add(hostname)
        return True

    def release(self, hostname: str, route: R) -> bool:
        """
        Stop routing C{hostname} to C{route}.

        @return: whether it was routed there.
        """
        if self._routes.get(hostname) is not route:
            return False
        del self._routes[hostname]
        names = self._names[route]
        names.discard(hostname)
        if not names:
            del self._names[route]
        return True

    def lookup(self, hostname: str) -> R | None:
        """
        The route of a hostname, or C{None}.
        """
        return self._routes.get(hostname)

    def namesOf(self, route: R) -> frozenset[str]:
        """
        The names routed to C{route}.
        """
        return frozenset(self._names.get(route, ()))

    def __len__(self) -> int:
        return len(self._routes)


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
    route = table.lookup(domain)
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
