# -*- test-case-name: tests.test_xtls_handler -*-
"""
Stanzas between handlers in memory, re-exported by L{xmppcomp.testing}:
L{StanzaRouter} serialises every stanza, queues it, and delivers it parsed
anew to the end whose domain is in its C{to}, so that two handlers share
no element objects and everything crosses as XML text. No stream is
negotiated: for handlers (wokkel C{XMPPHandler}s) alone, without a
L{Component<xmppcomp.component.Component>}.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock
from twisted.words.protocols.jabber.jid import JID
from twisted.words.protocols.jabber.xmlstream import (
    STREAM_AUTHD_EVENT,
    STREAM_CONNECTED_EVENT,
)
from twisted.words.xish import domish, utility
from wokkel.subprotocols import StreamManager

__all__ = ["StanzaEnd", "StanzaRouter"]

_TO = re.compile(r"\sto=(['\"])(.*?)\1")


class StanzaEnd(utility.EventDispatcher):
    """
    One entity's connection to a L{StanzaRouter}, in place of an XML
    stream: C{send}, C{addObserver}, C{dispatch}.

    @ivar sent: every stanza this end sent, as XML text.
    """

    def __init__(self, router: StanzaRouter) -> None:
        super().__init__()
        self._router = router
        self.sent: list[str] = []
        self._stanzas: list[domish.Element] = []
        self._parser = domish.elementStream()
        self._parser.DocumentStartEvent = lambda root: None
        self._parser.ElementEvent = self._stanzas.append
        self._parser.DocumentEndEvent = lambda: None
        self._parser.parse(b"<stream xmlns='jabber:client'>")

    def send(self, obj: domish.Element | str) -> None:
        """
        Queue a stanza (an element, or its XML text) at the router.
        """
        text = obj if isinstance(obj, str) else obj.toXml()
        self.sent.append(text)
        self._router.enqueue(text)

    def receive(self, text: str) -> None:
        """
        Parse C{text} and dispatch the stanzas it holds.
        """
        self._parser.parse(text.encode("utf-8"))
        stanzas = list(self._stanzas)
        del self._stanzas[:]
        for stanza in stanzas:
            self.dispatch(stanza)


class _Bootstraps:
    """
    What a wokkel L{StreamManager} needs of its factory: somewhere to add
    the observers of the stream events, which L{StanzaRouter.attach} then
    calls.
    """

    def __init__(self) -> None:
        self.observers: dict[str, list[Callable[..., object]]] = {}

    def addBootstrap(self, event: str, observer: Callable[..., object]) -> None:
        self.observers.setdefault(event, []).append(observer)

    def fire(self, event: str, *args: object) -> None:
        for observer in self.observers.get(event, []):
            observer(*args)


class StanzaRouter:
    """
    Route stanzas between L{StanzaEnd}s by the domain of C{to}; nothing
    moves until L{pump} (or L{flush}).

    @ivar reactor: the clock of the handlers attached with L{attach}
        (unless it is given another).
    @ivar dropped: stanzas for a domain nobody has.
    @ivar delivered: how many stanzas were delivered.
    @ivar bytes: how many characters of XML were delivered or dropped.
    """

    def __init__(self, reactor: IReactorTime | None = None) -> None:
        """
        @param reactor: a L{Clock} is made if not given.
        """
        self.reactor: IReactorTime = Clock() if reactor is None else reactor
        self._queue: deque[str] = deque()
        self._ends: dict[str, StanzaEnd] = {}
        self.dropped: list[str] = []
        self.delivered = 0
        self.bytes = 0

    def connect(self, domain: str) -> StanzaEnd:
        """
        A new end that receives the stanzas to C{domain}.
        """
        end = StanzaEnd(self)
        self._ends[domain] = end
        return end

    # Any: handler is a wokkel XMPPHandler (wokkel is untyped).
    def attach(
        self,
        domain: str,
        handler: Any,
        reactor: IReactorTime | None = None,
        *more: Any,
        manager: Callable[..., StreamManager] = StreamManager,
    ) -> StanzaEnd:
        """
        Put C{handler} (a wokkel C{XMPPHandler}), and any C{more}, in a
        wokkel L{StreamManager} whose stream is a new end for C{domain},
        connected and initialised.

        @param reactor: the clock of the manager (its IQ timeouts);
            L{reactor} if not given.
        @param more: other handlers on the same stream, initialised after
            C{handler}.
        @param manager: makes the manager, given its factory and
            C{reactor=}: L{StreamManager} or a subclass of it.
        @return: the end.
        """
        end = self.connect(domain)
        bootstraps = _Bootstraps()
        parent = manager(bootstraps, reactor=self.reactor if reactor is None else reactor)
        for each in (handler, *more):
            each.setHandlerParent(parent)
        bootstraps.fire(STREAM_CONNECTED_EVENT, end)
        bootstraps.fire(STREAM_AUTHD_EVENT, end)
        return end

    def enqueue(self, text: str) -> None:
        """
        Queue a stanza, as XML text.
        """
        self._queue.append(text)

    def pump(self) -> bool:
        """
        Deliver one stanza.

        @return: whether there was one.
        """
        if not self._queue:
            return False
        text = self._queue.popleft()
        self.bytes += len(text)
        # The destination domain, from the serialised text.
        match = _TO.search(text[: text.index(">")])
        to = match.group(2) if match else None
        end = self._ends.get(JID(to).host) if to else None
        if end is None:
            self.dropped.append(text)
        else:
            self.delivered += 1
            end.receive(text)
        return True

    def flush(self, limit: int = 1_000_000) -> int:
        """
        Deliver until nothing is left.

        @return: how many stanzas were delivered.
        """
        count = 0
        while self.pump():
            count += 1
            if count > limit:
                raise AssertionError("the router never went quiet")
        return count
