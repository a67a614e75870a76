# -*- test-case-name: tests.test_httpauth_hostile -*-
"""
The confirmer against hostile requests, through the real stack: our
L{Component} connected to a real Prosody, the confirmer's
L{ConfirmerSite} on loopback TCP serving a real directory, requests
written byte for byte (L{tests.rawhttp}) from many loopback source
addresses, and a real user who confirms.

Each test is one finding of issue 15, as an attacker would try it.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from xmppcomp.errors import UnserializableElement
from xmppcomp.httpauth import AccessRule, AccessRules, ConfinedFile, Limits, makeConfirmer
from xmppcomp.httpauth._frontend import loopbackFrontend

from .rawhttp import basicValue, rawRequest
from .test_httpauth_e2e import ConfirmerMixin, confirmOf


class _HostileMixin(ConfirmerMixin):
    """
    Protect mode over a directory: C{/a.txt} for anyone who confirms,
    C{/sub/} for the test user, C{/private/} for someone else.
    """

    limits = Limits()

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield ConfirmerMixin.setUp(self)
        root = os.path.abspath(self.mktemp())
        for path, content in [
            ("a.txt", b"public a"),
            ("sub/a.txt", b"sub a"),
            ("private/secret.txt", b"the secret"),
        ]:
            os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
            with open(os.path.join(root, path), "wb") as f:
                f.write(content)
        self.limits = type(self).limits
        self.confirmer = makeConfirmer(
            self.requester,
            AccessRules(
                [
                    AccessRule("/", anyone=True),
                    AccessRule("/sub", jids=[self.server.userJID]),
                    AccessRule("/private", jids=["romeo@montague.lit"]),
                ]
            ),
            self.ledgerClock,
            self.limits,
        )
        self.port = yield self.listen(self.confirmer.protect(ConfinedFile(root), loopbackFrontend()))

    def request(self, target: bytes, who: str | None, transactionId: str = "t1", **kwargs: Any) -> Any:
        headers = list(kwargs.pop("headers", []))
        if who is not None:
            headers.append((b"Authorization", basicValue(who, transactionId)))
        return self.wait(rawRequest(reactor, self.port, target, headers, **kwargs), "HTTP answer")

    @defer.inlineCallbacks
    def confirmOnce(self, transactionId: str, source: str = "127.0.0.1") -> Any:
        """
        The test user asks for C{/a.txt} and approves: the answer.
        """
        pending = self.request(b"/a.txt", self.user.jid.full(), transactionId, source=source)
        self.user.approveIQ((yield self.nextRequest()))
        answer = yield pending
        return answer


class HostileTests(_HostileMixin, TestCase):
    """
    The findings of issue 15 that one request shows.
    """

    @defer.inlineCallbacks
    def test_bypassesRefused(self) -> Any:
        """
        Before: C{/%73ub/a.txt}, C{--path-as-is /./sub/a.txt} served
        C{/sub} to a JID its rule does not allow. Now every spelling of
        C{/private} is decided on as C{/private}: 403, nobody asked.
        """
        for target in [b"/%70rivate/secret.txt", b"/./private/secret.txt", b"//private/secret.txt", b"/sub/../private/secret.txt"]:
            answer = yield self.request(target, self.user.jid.full())
            self.assertEqual(answer.status, 403, target)
            self.assertNotIn(b"the secret", answer.body)
        self.assertEqual(self.user.received, 0)

    @defer.inlineCallbacks
    def test_canonicalAskedAndServed(self) -> Any:
        """
        The user is asked about the canonical URL, and that is what is
        served.
        """
        pending = self.request(b"/%73ub//./a.txt", self.user.jid.full())
        iq = yield self.nextRequest()
        self.assertEqual(confirmOf(iq).url, "http://127.0.0.1:%d/sub/a.txt" % (self.port,))
        self.user.approveIQ(iq)
        answer = yield pending
        self.assertEqual((answer.status, answer.body), (200, b"sub a"))

    @defer.inlineCallbacks
    def test_refusedBeforeAsking(self) -> Any:
        """
        An encoded slash, NUL (before: a 500 after the user had been
        asked), a path out of the root, a Host outside the allowed names:
        400, nobody asked.
        """
        for target in [b"/sub%2fa.txt", b"/%00", b"/../a.txt", b"/%ff.txt"]:
            answer = yield self.request(target, self.user.jid.full())
            self.assertEqual(answer.status, 400, target)
        answer = yield self.request(b"/a.txt", self.user.jid.full(), host=b"evil.example")
        self.assertEqual(answer.status, 400)
        self.assertEqual(self.user.received, 0)

    @defer.inlineCallbacks
    def test_forbiddenCharactersKeepTheStream(self) -> Any:
        """
        Before: U+FFFE in a transaction id reached the confirm stanza and
        Prosody ended the component's stream (not-well-formed). Now it is a
        401 naming the character, nobody is asked, and the next
        confirmation goes through the same stream.
        """
        stream = self.requester.xmlstream
        for bad in ["\ufffe", "a\uffffb", "\u202eevil", "x\u2028y"]:
            answer = yield self.request(b"/a.txt", self.user.jid.full(), bad)
            self.assertEqual(answer.status, 401, bad)
            self.assertIn(b"U+", answer.body)
        self.assertEqual(self.user.received, 0)
        answer = yield self.confirmOnce("good")
        self.assertEqual(answer.status, 200)
        self.assertIs(self.requester.xmlstream, stream)

    @defer.inlineCallbacks
    def test_streamRefusesBadElement(self) -> Any:
        """
        The last line of defence: the component refuses to send an element
        that is not well-formed, with an error to the caller, and the
        stream stays up.
        """
        stream = self.requester.xmlstream
        message = domish.Element((None, "message"))
        message["to"] = self.user.jid.full()
        message["from"] = self.server.componentName
        message.addElement("body", content="\uffff")
        self.assertRaises(UnserializableElement, self.service.send, message)
        answer = yield self.confirmOnce("after")
        self.assertEqual(answer.status, 200)
        self.assertIs(self.requester.xmlstream, stream)

    @defer.inlineCallbacks
    def test_bounceConsumesNothing(self) -> Any:
        """
        Before: a confirmation to an undeliverable JID bounced, the bounce
        counted as a denial (403) and the transaction id was remembered.
        Now it is a 401 saying it could not be asked, and the same
        credentials ask again (nothing was used up).
        """
        ghost = "ghost@%s" % (self.server.domain,)
        for _ in range(2):
            answer = yield self.request(b"/a.txt", ghost, "t1")
            self.assertEqual(answer.status, 401)
            self.assertTrue(answer.header(b"WWW-Authenticate"))
            self.assertNotIn(b"used already", answer.body)
        self.assertEqual(self.confirmer.ledger.rememberedCount, 0)


class JunkFloodTests(_HostileMixin, TestCase):
    """
    Before: 320 junk requests to undeliverable JIDs in 1.1 s filled
    C{max_remembered = 300}, and every user got 503 with C{Retry-After:
    86399}. Here the memory is tiny (20) and the junk comes from many
    source addresses; the user's own confirmations keep getting 200.
    """

    limits = Limits(maxRemembered=20, rememberedPerDomain=20)

    @defer.inlineCallbacks
    def test_junkSparesTheUser(self) -> Any:
        """
        300 junk attempts at the user's own domain, from 100 loopback
        addresses, interleaved with the user's confirmations from another
        address: each of those gets 200.
        """
        domain = self.server.domain
        confirmed = 0
        for batch in range(6):
            junk = [
                self.request(
                    b"/a.txt",
                    "ghost%d@%s" % (batch * 50 + n, domain),
                    "junk",
                    source="127.0.%d.%d" % (1 + batch, 1 + n % 17),
                )
                for n in range(50)
            ]
            answers = yield defer.gatherResults(junk)
            self.assertEqual({a.status for a in answers} - {401, 429}, set())
            answer = yield self.confirmOnce("mine-%d" % (batch,), source="127.0.0.1")
            self.assertEqual(answer.status, 200)
            confirmed += 1
        self.assertEqual(confirmed, 6)
        self.assertLessEqual(self.confirmer.ledger.rememberedCount, 6)

    @defer.inlineCallbacks
    def test_undeliverablePerSource(self) -> Any:
        """
        One source aiming junk at a domain is stopped (429 with
        C{Retry-After}) after C{undeliverablePerTarget} bounces; the same
        domain's user, from another address, is not.
        """
        domain = self.server.domain
        statuses = []
        for n in range(self.limits.undeliverablePerTarget + 1):
            answer = yield self.request(b"/a.txt", "ghost%d@%s" % (n, domain), "junk", source="127.0.9.9")
            statuses.append(answer.status)
        self.assertEqual(statuses[:-1], [401] * self.limits.undeliverablePerTarget)
        self.assertEqual(statuses[-1], 429)
        answer = yield self.confirmOnce("mine", source="127.0.0.1")
        self.assertEqual(answer.status, 200)
