# -*- test-case-name: tests.test_httpauth_store -*-
"""
Where the confirmer keeps its state: L{IConfirmationStore}, the seam between
the checker (L{xmppcomp.httpauth.XMPPConfirmationChecker}) and the memory of
pending confirmations, used transaction ids, sessions, HEAD/OPTIONS windows
and limit counters that L{xmppcomp.httpauth._policy} defines.

Two stores provide it:

  - L{MemoryStore}, the default: one process's L{Ledger}, each operation's
    L{Deferred} already fired;
  - L{xmppcomp.httpauth.RedisStore}: the same rules on a Redis server that
    several confirmers share (issue 19), so that a transaction id is
    confirmed at most once among them all and every limit counts across
    them.

A store also carries answers between instances: a confirmation is asked by
one instance (the I{owner}, which holds the waiting HTTP request), and the
XMPP server may hand the answer to another instance serving the same
hostname. L{IConfirmationStore.relay} passes it to the owner, which then
matches it exactly as if it had received it itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from twisted.internet.defer import Deferred, fail, succeed
from twisted.words.protocols.jabber import jid
from zope.interface import Attribute, Interface, implementer

from xmppcomp.httpauth._errors import StoreUnavailable
from xmppcomp.httpauth._policy import Attempt, Decision, Ledger

__all__ = ["IConfirmationStore", "MemoryStore", "newInstanceId"]

#: Random bytes of an instance id (hex: twice as many characters).
INSTANCE_ID_BYTES = 8


def newInstanceId() -> str:
    """
    A fresh random instance id: L{INSTANCE_ID_BYTES} random bytes in
    lower-case hex.
    """
    return secrets.token_hex(INSTANCE_ID_BYTES)


#: Receives the answers other instances relay to this one: the stanza, as
#: XML text.
RelayReceiver = Callable[[str], None]


class IConfirmationStore(Interface):
    """
    The confirmer's state, behind asynchronous operations (a store may be
    remote). The operations are those of L{Ledger} and mean the same:
    L{decide} for each attempt; after an L{Ask<xmppcomp.httpauth._policy.Ask>},
    exactly one of L{settle} or L{abandon}.

    A failing operation fails with
    L{StoreUnavailable<xmppcomp.httpauth.StoreUnavailable>} (or another
    L{ConfirmationFailed<xmppcomp.httpauth.ConfirmationFailed>}): the
    confirmer then grants nothing.
    """

    instanceId = Attribute(
        "This instance's random id (C{str}, hex): pending confirmations it "
        "asks record it as their owner, and answers for them are relayed to it."
    )

    def start() -> Deferred[None]:
        """
        Get ready (connect, check the server); fails with
        L{StoreUnavailable<xmppcomp.httpauth.StoreUnavailable>} when the
        store refuses to serve.
        """

    def stop() -> Deferred[None]:
        """
        Let go of every connection.
        """

    def ping() -> Deferred[bool]:
        """
        Whether the store can serve now (for health checks): never fails.
        """

    def decide(attempt: Attempt, timeout: float) -> Deferred[Decision]:
        """
        Decide what to do with C{attempt}, as L{Ledger.decide}; an L{Ask}
        leaves a pending entry owned by this instance, a
        L{Join<xmppcomp.httpauth._policy.Join>} is only ever given for an
        entry this instance owns.

        @param timeout: seconds a confirmation asked now may take.
        """

    def settle(attempt: Attempt, allowed: bool, by: jid.JID | None = None) -> Deferred[None]:
        """
        Record the user's answer, as L{Ledger.settle}. Fails (and so grants
        nothing) when the pending entry was lost meanwhile.
        """

    def abandon(attempt: Attempt, undeliverable: bool = False) -> Deferred[None]:
        """
        No answer came, as L{Ledger.abandon}.
        """

    def relay(owner: str, stanza: str) -> Deferred[bool]:
        """
        Pass an answer that arrived here to the instance C{owner}.

        @param stanza: the answer, as XML text.
        @return: fires with C{True} when that instance was listening,
            C{False} when no instance with that id is (it died: the answer
            is dropped).
        """

    def listen(receiver: RelayReceiver, lost: Callable[[StoreUnavailable], None] | None = None) -> None:
        """
        Give the answers other instances relay to this one to C{receiver};
        call C{lost} when relayed answers may have been lost on the way
        (the store's channel went down): the confirmations waiting here
        then end with that error, as none of them could be granted while
        the store is down anyway.
        """


@implementer(IConfirmationStore)
class MemoryStore:
    """
    The state of one process, in a L{Ledger}: the default, and today's
    behaviour. Every operation's L{Deferred} has fired when it returns;
    there are no other instances to relay to.

    @ivar ledger: the ledger.
    @ivar instanceId: see L{IConfirmationStore.instanceId}.
    """

    def __init__(self, ledger: Ledger, instanceId: str | None = None) -> None:
        self.ledger = ledger
        self.instanceId = newInstanceId() if instanceId is None else instanceId
        self._receiver: RelayReceiver | None = None

    def start(self) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def ping(self) -> Deferred[bool]:
        return succeed(True)

    def decide(self, attempt: Attempt, timeout: float) -> Deferred[Decision]:
        try:
            return succeed(self.ledger.decide(attempt, timeout))
        except Exception:
            return fail()

    def settle(self, attempt: Attempt, allowed: bool, by: jid.JID | None = None) -> Deferred[None]:
        try:
            self.ledger.settle(attempt, allowed, by)
        except Exception:
            return fail()
        return succeed(None)

    def abandon(self, attempt: Attempt, undeliverable: bool = False) -> Deferred[None]:
        try:
            self.ledger.abandon(attempt, undeliverable)
        except Exception:
            return fail()
        return succeed(None)

    def relay(self, owner: str, stanza: str) -> Deferred[bool]:
        """
        Nobody else shares this memory: C{False}, unless C{owner} is this
        instance (then C{receiver} gets it).
        """
        if owner == self.instanceId and self._receiver is not None:
            self._receiver(stanza)
            return succeed(True)
        return succeed(False)

    def listen(self, receiver: RelayReceiver, lost: Callable[[StoreUnavailable], None] | None = None) -> None:
        self._receiver = receiver
