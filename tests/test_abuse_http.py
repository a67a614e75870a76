# -*- test-case-name: tests.test_abuse_http -*-
"""
Abuse of the XEP-0070 confirmer's HTTP side: malformed and oversized
Authorization headers, thousands of pending confirmations, replayed
transaction ids; each gets a clear 4xx or 5xx, nothing is logged as an
error, what is kept stays bounded, and other users are still served.
"""

from __future__ import annotations

import base64
from typing import Any

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from xmppcomp.httpauth import AccessRule, AccessRules, Limits, Outcome, makeConfirmer

from .test_httpauth_web import FRONTEND, FakeRequester, _Echo, basic


def raw(value: bytes) -> dict[bytes, list[bytes]]:
    return {b"Authorization": [value]}


class HTTPAbuseTests(SynchronousTestCase):
    """
    The protect resource under abuse.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.requester = FakeRequester()
        self.confirmer = makeConfirmer(
            self.requester,
            AccessRules([AccessRule("/", anyone=True)]),
            self.clock,
            # Everything comes from StubTreq's 127.0.0.1: the per-address
            # allowance is raised so the other limits show.
            Limits(pendingPerJID=2, pendingTotal=50, attemptsPerClient=100_000),
        )
        self.stub = StubTreq(self.confirmer.protect(_Echo(), FRONTEND))

    def get(self, headers: Any) -> Any:
        d = self.stub.get("http://files.example/", headers=headers)
        self.stub.flush()
        return d

    def status(self, headers: Any) -> int:
        response = self.successResultOf(self.get(headers))
        self.successResultOf(self.stub.content(response))
        return int(response.code)

    def test_malformedHeaders(self) -> None:
        """
        Malformed Authorization headers get 400 or 401, never 500, and ask
        nobody.
        """
        bad = [
            b"Basic",
            b"Basic ",
            b"Basic !!!!",
            b"Basic " + base64.b64encode(b"no colon"),
            b"Basic " + base64.b64encode(b":"),
            b"Basic " + base64.b64encode(b"juliet@capulet.com:"),
            b"Basic " + base64.b64encode(b":t1"),
            b"Basic " + base64.b64encode(b"\xff\xfe:\x00\x01"),
            b"Basic " + base64.b64encode(b"juliet@%ZZ:t1"),
            b"Basic " + base64.b64encode(b"juliet@capulet.com%00:t1"),
            b"Basic " + base64.b64encode(b"@@@:t1"),
            b"Basic " + base64.b64encode(b"x" * 3000 + b"@capulet.com:t1"),
            b"Bearer abc",
            b"Digest",
            b"Digest garbage",
            b'Digest username="juliet@capulet.com", realm="xmpp", nonce="x", uri="/", response="y"',
            b"\x00\x01\x02",
            b"Basic " + base64.b64encode(b"juliet@" + b"c" * 1100 + b".com:t1"),
            b"Basic " + base64.b64encode(b"juliet@capulet.com/" + b"r" * 1100 + b":t1"),
        ]
        statuses = {value: self.status(raw(value)) for value in bad}
        for value, status in statuses.items():
            self.assertIn(status, (400, 401), value[:60])
        self.assertEqual(self.requester.asked, [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_oversizedHeader(self) -> None:
        """
        A header line over twisted.web's 16 KiB line limit is not buffered:
        the connection is closed without a response, and nobody is asked.
        """
        from twisted.web._newclient import ResponseNeverReceived

        self.failureResultOf(self.get(raw(b"Basic " + b"A" * 100000)), ResponseNeverReceived)
        self.assertEqual(self.requester.asked, [])

    def test_thousandsPending(self) -> None:
        """
        Thousands of requests for distinct JIDs: only C{pendingTotal} are
        asked, the rest get 429 (a limit) at once; a JID with C{pendingPerJID}
        pending gets 429; once the pending ones time out, new users are
        asked again.
        """
        pending = [self.get(basic("user%d@capulet.com/r" % i, "t")) for i in range(50)]
        statuses = [self.status(basic("more%d@capulet.com/r" % i, "t")) for i in range(2000)]
        self.assertEqual(set(statuses), {429})
        self.assertEqual(len(self.requester.asked), 50)
        for d in pending:
            self.assertNoResult(d)
        for (_, _, d) in self.requester.asked:
            d.callback(Outcome.DENY)
        self.stub.flush()
        self.assertEqual({self.successResultOf(d).code for d in pending}, {403})
        late = self.get(basic("late@capulet.com/r", "t"))
        self.requester.asked[-1][2].callback(Outcome.ALLOW)
        self.stub.flush()
        self.assertEqual(self.successResultOf(late).code, 201)
        self.assertEqual(len(self.requester.asked), 51)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_perJIDLimitSparesOthers(self) -> None:
        """
        One JID flooding gets 429 beyond C{pendingPerJID}; another JID is
        still asked and confirmed.
        """
        flood = [self.get(basic("mallory@evil.example/r", "t%d" % i)) for i in range(2)]
        self.assertEqual(
            {self.status(basic("mallory@evil.example/r", "x%d" % i)) for i in range(100)}, {429}
        )
        d = self.get(basic("juliet@capulet.com/balcony", "t1"))
        self.assertEqual(str(self.requester.asked[-1][0]), "juliet@capulet.com/balcony")
        self.requester.asked[-1][2].callback(Outcome.ALLOW)
        self.stub.flush()
        self.assertEqual(self.successResultOf(d).code, 201)
        for f in flood:
            self.assertNoResult(f)

    def test_replayedTransactionId(self) -> None:
        """
        A confirmed transaction id used again after its session ended is a
        replay: 401 with the challenge (a browser asks for new credentials),
        without asking the user.
        """
        d = self.get(basic("juliet@capulet.com/balcony", "t1"))
        self.requester.asked[-1][2].callback(Outcome.ALLOW)
        self.stub.flush()
        self.assertEqual(self.successResultOf(d).code, 201)
        self.clock.advance(Limits().sessionLifetime + 1)
        asked = len(self.requester.asked)
        self.assertEqual(self.status(basic("juliet@capulet.com/balcony", "t1")), 401)
        self.assertEqual(len(self.requester.asked), asked)


class PerAddressTests(SynchronousTestCase):
    """
    Attempts that would ask over XMPP are limited per client address.
    """

    def test_attemptsPerClient(self) -> None:
        """
        Beyond C{attemptsPerClient} asks from one address: 429 with
        C{Retry-After} and its reason phrase, nobody asked; another address
        is still asked.
        """
        from .test_httpauth_web import EdgeTests

        requester = FakeRequester()
        confirmer = makeConfirmer(
            requester, AccessRules.anyone(), Clock(), Limits(attemptsPerClient=3, attemptWindow=60)
        )
        resource = confirmer.protect(_Echo(), FRONTEND)
        edge = EdgeTests("test_bypassesProtect")
        self.addCleanup(edge.doCleanups)

        def ask(n: int, peer: str) -> bytes:
            auth = basic("u%d@capulet.com/r" % (n,), "t")[b"Authorization"][0]
            head = b"GET / HTTP/1.1\r\nHost: files.example\r\nAuthorization: " + auth
            return edge.raw(resource, head, peer=peer).value()

        for n in range(3):
            self.assertEqual(ask(n, "192.0.2.1"), b"")
        answer = ask(3, "192.0.2.1")
        self.assertTrue(answer.startswith(b"HTTP/1.1 429 Too Many Requests\r\n"), answer)
        self.assertIn(b"Retry-After: ", answer)
        self.assertEqual(len(requester.asked), 3)
        self.assertEqual(ask(4, "192.0.2.2"), b"")
        self.assertEqual(len(requester.asked), 4)
