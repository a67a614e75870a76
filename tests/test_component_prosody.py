# -*- test-case-name: tests.test_component_prosody -*-
"""
The L{Component} service with C{protocol="xep0114"} against a real Prosody
on loopback (private configuration, L{tests.prosody}): a user logged in to
Prosody exchanges messages and an IQ with the component's handlers.

Skipped only when the prosody binaries are missing (CI installs them).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber.xmlstream import IQ, toResponse
from twisted.words.xish import domish
from wokkel.subprotocols import IQHandlerMixin, XMPPHandler

from xmppcomp.component import Component

from .prosody import requireProsody, startProsody
from .test_prosody import ProsodyMixin

TEST_NS = "urn:xmppcomp:test:component-prosody"


class EchoHandler(XMPPHandler, IQHandlerMixin):
    """
    Echoes messages and answers IQ gets in L{TEST_NS} (an C{async def}
    handler).
    """

    iqHandlers = {"/iq[@type='get']/query[@xmlns='%s']" % TEST_NS: "onQuery"}

    def __init__(self) -> None:
        super().__init__()
        self.messages: defer.DeferredQueue[domish.Element] = defer.DeferredQueue()

    def connectionInitialized(self) -> None:
        self.xmlstream.addObserver("/message", self.onMessage)
        self.xmlstream.addObserver("/iq[@type='get']", self.handleRequest)

    def onMessage(self, message: domish.Element) -> None:
        if message.getAttribute("type") == "error":
            return
        self.messages.put(message)
        reply = domish.Element((None, "message"))
        reply["from"] = message["to"]
        reply["to"] = message["from"]
        reply["type"] = message.getAttribute("type", "normal")
        reply.addElement("body", content="echo: %s" % (message.body,))
        self.send(reply)

    async def onQuery(self, iq: domish.Element) -> domish.Element:
        answer = domish.Element((TEST_NS, "answer"))
        answer.addContent("42")
        return answer


class ComponentWithProsodyTests(ProsodyMixin, TestCase):
    """
    Our L{Component}, XEP-0114 mode, served by Prosody.
    """

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        requireProsody()
        self.server = yield startProsody(self)
        self.handler = EchoHandler()
        self.service = Component(
            "tcp:host=%s:port=%d" % (self.server.host, self.server.componentPort),
            self.server.domain,
            [self.server.componentName],
            secret=self.server.componentSecret,
            protocol="xep0114",
            reactor=reactor,
            retryPolicy=lambda attempt: 0.2,
        )
        self.handler.setHandlerParent(self.service)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        yield self.wait(self.service.whenReady(), "component ready")

    @defer.inlineCallbacks
    def test_messagesAndIQ(self) -> Any:
        """
        A client's message reaches the component's handler and its echo
        comes back; an IQ get is answered by the C{async def} handler; a
        message the component starts reaches the client.
        """
        client = yield self.client()
        clientJID = client.authenticator.jid.full()
        replies: defer.DeferredQueue[domish.Element] = defer.DeferredQueue()
        client.addObserver("/message", replies.put)

        message = domish.Element((None, "message"))
        message["to"] = self.server.componentName
        message["type"] = "chat"
        message.addElement("body", content="hello component")
        client.send(message)
        received = yield self.wait(self.handler.messages.get(), "message at the component")
        self.assertEqual((received["from"], str(received.body)), (clientJID, "hello component"))
        reply = yield self.wait(replies.get(), "echo at the client")
        self.assertEqual((reply["from"], str(reply.body)), (self.server.componentName, "echo: hello component"))

        iq = IQ(client, "get")
        iq["to"] = self.server.componentName
        iq.addElement((TEST_NS, "query"))
        result = yield self.wait(iq.send(), "IQ result at the client")
        self.assertEqual(str(result.answer), "42")

        notice = domish.Element((None, "message"))
        notice["from"] = self.server.componentName
        notice["to"] = clientJID
        notice.addElement("body", content="from the component")
        yield self.service.sendOrFail(notice)
        pushed = yield self.wait(replies.get(), "component's message at the client")
        self.assertEqual(str(pushed.body), "from the component")

    @defer.inlineCallbacks
    def test_requestToClient(self) -> Any:
        """
        L{Component.request} to the logged-in client gets the client's
        answer through Prosody.
        """
        client = yield self.client()

        def answer(iq: domish.Element) -> None:
            client.send(toResponse(iq, "result"))

        client.addObserver("/iq[@type='get']/ping[@xmlns='urn:xmpp:ping']", answer)
        ping = domish.Element((None, "iq"))
        ping["type"] = "get"
        ping["from"] = self.server.componentName
        ping["to"] = client.authenticator.jid.full()
        ping.addElement(("urn:xmpp:ping", "ping"))
        result = yield self.wait(self.service.request(ping), "ping answer")
        self.assertEqual(result["type"], "result")

