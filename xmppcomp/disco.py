# -*- test-case-name: tests.test_disco -*-
"""
Service discovery (XEP-0030) for a component that binds several hostnames.

wokkel's L{DiscoHandler<wokkel.disco.DiscoHandler>} answers disco#info and
disco#items requests by asking every sibling handler that provides
L{IDisco<wokkel.iwokkel.IDisco>} and merging the answers.
L{ComponentIdentity} is such a sibling: it knows the component's hostnames
and gives each its identities (by default C{component/generic}), the
disco#info and disco#items features, and its items. Other handlers add
their features the same way (wokkel's L{PingHandler<wokkel.ping.PingHandler>}
adds C{urn:xmpp:ping}). L{discoHandlers} returns the pair to register;
L{addDiscovery} registers them on a component for its hostnames.

What the merged answer is:

  - to a hostname L{ComponentIdentity} knows, with no node: its identities
    and items plus whatever the other handlers declare;
  - to any other hostname: an C{item-not-found} error, whatever the other
    handlers say (wokkel alone would answer an empty result, or one with
    only the siblings' features, which is no entity at all);
  - to a node: L{ComponentIdentity} declares nothing; wokkel answers a
    disco#info request for a node nobody declares anything for with
    C{item-not-found}, but a disco#items request for it with an empty list;
  - to an address with a localpart or resource at a known hostname (a user
    or session of the component, not the component): L{ComponentIdentity}
    declares nothing, and leaves it to the other handlers.
"""

from __future__ import annotations

# wokkel must be imported after the compatibility shim; keep this first.
import xmppcomp._wokkelcompat  # noqa: F401  # isort: skip

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import attrs
from twisted.words.protocols.jabber import jid
from twisted.words.protocols.jabber.error import StanzaError
from wokkel.disco import (
    NS_DISCO_INFO,
    NS_DISCO_ITEMS,
    DiscoFeature,
    DiscoHandler,
    DiscoIdentity,
    DiscoItem,
)
from wokkel.iwokkel import IDisco
from wokkel.subprotocols import XMPPHandler

from xmppcomp.jids import InvalidDomain, domainOrNone, normalizeDomain
from zope.interface import implementer

__all__ = ["ComponentIdentity", "addDiscovery", "discoHandlers", "defaultIdentities"]


def defaultIdentities() -> list[DiscoIdentity]:
    """
    The identities of a hostname nothing more specific was given for.

    @return: A new list holding one C{component/generic} identity.
    """
    return [DiscoIdentity("component", "generic")]


def _normalizeHostname(hostname: str) -> str:
    """
    The one form of a hostname (L{xmppcomp.jids.normalizeDomain}), so that
    a configured name and the C{to} of a request compare equal whichever
    spelling (U-label, A-label, case, trailing dot) either uses.

    @param hostname: A domain name, such as C{'Conference.Example.org'}.
    @return: The normalized domain, such as C{'conference.example.org'}.
    @raise ValueError: If C{hostname} is not a bare domain.
    """
    if not hostname:
        raise ValueError("not a hostname: an empty string")
    try:
        return normalizeDomain(hostname)
    except InvalidDomain as e:
        raise ValueError(f"not a hostname: {hostname!r} ({e.reason})") from None


@attrs.frozen
class _Host:
    """
    What one hostname answers.

    @ivar identities: Its identities, at least one.
    @ivar items: Its items.
    """

    identities: tuple[DiscoIdentity, ...]
    items: tuple[DiscoItem, ...]


@implementer(IDisco)
class ComponentIdentity(XMPPHandler):
    """
    Answer for the component's hostnames in service discovery: identities,
    the disco features and items, per hostname.

    Register it next to a L{DiscoHandler<wokkel.disco.DiscoHandler>} (see
    L{discoHandlers}). It declares nothing about nodes, nor about addresses
    with a localpart or resource, and makes requests to hostnames it does
    not know fail with C{item-not-found}. When the component binds or
    unbinds a hostname, tell it with L{addHostname} and L{removeHostname}.

    @ivar _default: The identities of a hostname given none.
    @ivar _hosts: Normalized hostname to what it answers.
    """

    def __init__(
        self,
        identities: Mapping[str, Sequence[DiscoIdentity]],
        default: Sequence[DiscoIdentity] | None = None,
        items: Mapping[str, Sequence[DiscoItem]] | None = None,
    ) -> None:
        """
        @param identities: Each hostname the component answers for, with its
            identities; an empty sequence means C{default}.
        @param default: The identities of a hostname given none; if
            C{None}, L{defaultIdentities}.
        @param items: The items of some of those hostnames.
        @raise ValueError: If a key is not a hostname, if a hostname would
            have no identity, or if C{items} names a hostname that
            C{identities} lacks.
        """
        super().__init__()
        self._default: tuple[DiscoIdentity, ...] = tuple(
            defaultIdentities() if default is None else default
        )
        self._hosts: dict[str, _Host] = {}
        items = {} if items is None else items
        normalizedItems = {_normalizeHostname(h): i for h, i in items.items()}
        for hostname, hostIdentities in identities.items():
            normalized = _normalizeHostname(hostname)
            self.addHostname(
                normalized, hostIdentities, normalizedItems.pop(normalized, ())
            )
        if normalizedItems:
            raise ValueError(
                "items for hostnames without identities: "
                + ", ".join(sorted(normalizedItems))
            )

    @property
    def hostnames(self) -> frozenset[str]:
        """
        The hostnames answered for, normalized.
        """
        return frozenset(self._hosts)

    def addHostname(
        self,
        hostname: str,
        identities: Iterable[DiscoIdentity] = (),
        items: Iterable[DiscoItem] = (),
    ) -> None:
        """
        Answer for C{hostname} from now on (replacing what it answered).

        @param hostname: The hostname, for instance one just bound.
        @param identities: Its identities; if empty, the default ones.
        @param items: Its items.
        @raise ValueError: If C{hostname} is not a hostname, or would have
            no identity.
        """
        normalized = _normalizeHostname(hostname)
        hostIdentities = tuple(identities) or self._default
        if not hostIdentities:
            raise ValueError(
                f"{normalized}: no identities and an empty default "
                "(XEP-0030 requires at least one)"
            )
        self._hosts[normalized] = _Host(hostIdentities, tuple(items))

    def removeHostname(self, hostname: str) -> None:
        """
        Stop answering for C{hostname}, for instance once unbound.

        @param hostname: A hostname; one not answered for is ignored.
        @raise ValueError: If C{hostname} is not a hostname.
        """
        self._hosts.pop(_normalizeHostname(hostname), None)

    def _lookup(self, target: jid.JID | None) -> _Host | None:
        """
        Find what C{target} answers, if it is one of the hostnames itself.

        @param target: The address a request was sent to (C{None} if it
            had no C{to}).
        @return: The hostname's answers if C{target} is a bare known
            hostname; C{None} if it is an address at a known hostname.
        @raise StanzaError: C{item-not-found} if C{target} is at a hostname
            not answered for, or without C{to}.
        """
        host = None if target is None else self._hosts.get(domainOrNone(target.host) or target.host)
        if host is None:
            raise StanzaError("item-not-found")
        assert target is not None
        if target.user is not None or target.resource is not None:
            return None
        return host

    def getDiscoInfo(
        self, requestor: jid.JID, target: jid.JID, nodeIdentifier: str = ""
    ) -> list[DiscoIdentity | DiscoFeature]:
        """
        Declare the identities and disco features of a known hostname.

        @param requestor: The entity asking.
        @param target: The address asked about.
        @param nodeIdentifier: The node asked about, or C{''}.
        @return: The identities and features, or nothing for a node or an
            address at a known hostname.
        @raise StanzaError: C{item-not-found} for an unknown hostname.
        """
        host = self._lookup(target)
        if host is None or nodeIdentifier:
            return []
        return [
            *host.identities,
            DiscoFeature(NS_DISCO_INFO),
            DiscoFeature(NS_DISCO_ITEMS),
        ]

    def getDiscoItems(
        self, requestor: jid.JID, target: jid.JID, nodeIdentifier: str = ""
    ) -> list[DiscoItem]:
        """
        Declare the items of a known hostname.

        @param requestor: The entity asking.
        @param target: The address asked about.
        @param nodeIdentifier: The node asked about, or C{''}.
        @return: The items, or nothing for a node or an address at a known
            hostname.
        @raise StanzaError: C{item-not-found} for an unknown hostname.
        """
        host = self._lookup(target)
        if host is None or nodeIdentifier:
            return []
        return list(host.items)


def discoHandlers(
    identities: Mapping[str, Sequence[DiscoIdentity]],
    default: Sequence[DiscoIdentity] | None = None,
    items: Mapping[str, Sequence[DiscoItem]] | None = None,
) -> list[XMPPHandler]:
    """
    The handlers that give a component service discovery.

    Add both to the component's stream manager. Features and items that the
    component's other handlers declare through L{IDisco<wokkel.iwokkel.IDisco>}
    appear in the same answers.

    @param identities: See L{ComponentIdentity.__init__}.
    @param default: See L{ComponentIdentity.__init__}.
    @param items: See L{ComponentIdentity.__init__}.
    @return: A wokkel L{DiscoHandler<wokkel.disco.DiscoHandler>} and a
        L{ComponentIdentity}, in that order.
    """
    return [DiscoHandler(), ComponentIdentity(identities, default, items)]


class _Hostnamed(Protocol):
    """What L{addDiscovery} reads of a component (handlers are attached
    to it by wokkel's C{setHandlerParent}, untyped)."""

    @property
    def hostnames(self) -> Sequence[str]: ...


def addDiscovery(component: _Hostnamed) -> None:
    """
    Attach service discovery to C{component}: disco#info and disco#items
    answer for each of its hostnames (C{component/generic}), and
    C{item-not-found} for any other name.

    @param component: a L{Component<xmppcomp.component.Component>} (or
        anything with C{hostnames} that handlers can be attached to).
    """
    for handler in discoHandlers({name: () for name in component.hostnames}):
        handler.setHandlerParent(component)
