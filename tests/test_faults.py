# -*- test-case-name: tests.test_faults -*-
"""
Fault injection: the connection lost at every byte of a recorded
negotiation (in the middle of TLS, SASL and bind), and a peer that stops
reading (over real loopback TCP).
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from xmppcomp.config import RouterLimits

from .test_fuzz_stream import SIDES, TRANSCRIPTS, StreamRun
from .test_router_streamend import CLOSE_TIMEOUT, LoopbackRouter


class ConnectionResetTests(SynchronousTestCase):
    """
    A connection reset at any point leaves no timer, no session and no
    route behind, and logs no error.
    """

    def test_resetEverywhere(self) -> None:
        """
        Cut after every byte of every flight, on every side.
        """
        cuts = 0
        for side in SIDES:
            flights = TRANSCRIPTS[side]
            for n, flight in enumerate(flights):
                for cut in range(0, len(flight) + 1, 3):
                    stream = StreamRun(side, self.patch)
                    stream.feedAll(list(flights[:n]) + [flight[:cut]])
                    stream.xs.connectionLost(Failure(ConnectionLost("reset")))
                    self.assertEqual([c for c in stream.clock.getDelayedCalls() if c.active()], [])
                    if side != "initiating":
                        self.assertEqual(stream.router.sessions, {})
                        self.assertEqual(len(stream.router.table), 0)
                    else:
                        self.assertTrue(stream.outcomes)
                    cuts += 1
        self.assertGreater(cuts, 300)
        self.assertEqual(self.flushLoggedErrors(), [])


class BackPressureTests(LoopbackRouter, TestCase):
    """
    What the router does for a session whose peer stopped reading, over
    real loopback TCP: the kernel's buffers fill, then the transport's,
    which pauses the session (its streaming producer).
    """

    limits = RouterLimits(closeTimeout=CLOSE_TIMEOUT, maxBufferedBytes=300000)

    @defer.inlineCallbacks
    def test_peerThatStopsReading(self) -> Any:
        """
        A component (B) stops reading while another (A) sends it 50 KB
        messages, reading what comes back. Once B's transport is paused,
        the router queues at most C{max_buffered_bytes} more to B and
        bounces the rest to A with C{resource-constraint}, each bounce a
        few hundred bytes (addressing and error, not the payload). When B
        reads again it gets, in order, every message that was not bounced:
        each message A sent was either delivered or bounced, none lost.
        """
        b, _ = yield self.xep0114("old.example.net")
        b.transport.pauseProducing()
        a, _ = yield self.xep0114("other.example.net")
        body = b"x" * 50000
        sent: list[bytes] = []
        bounces: list[bytes] = []

        def send(ident: bytes) -> None:
            sent.append(ident)
            a.write(b"<message from='other.example.net' to='old.example.net' id='%s'><body>%s</body></message>" % (ident, body))

        @defer.inlineCallbacks
        def syncBounces() -> Any:
            said = yield self.sync(a, "other.example.net")
            bounces.extend(re.findall(rb"<message [^>]*type='error'.*?</message>", said))

        for n in range(2000):
            send(b"fill%d" % (n,))
            yield syncBounces()
            if bounces:
                break
        else:
            self.fail("the router never stopped writing to a peer that does not read")
        router = self.service.router
        assert router is not None
        [session] = [s for s in router.sessions.values() if "old.example.net" in s.names]
        self.assertTrue(session.paused)
        self.assertLessEqual(session.queued, self.limits.maxBufferedBytes)
        for more in range(5):
            send(b"more%d" % (more,))
        yield syncBounces()
        self.assertLessEqual(session.queued, self.limits.maxBufferedBytes)
        for bounce in bounces:
            self.assertLess(len(bounce), 1000, bounce[:300])
            self.assertIn(b"<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>", bounce)
            self.assertNotIn(b"<body>", bounce)
        bounced = [re.search(rb"id='([^']+)'", bounce).group(1) for bounce in bounces]  # type: ignore[union-attr]
        self.assertEqual(bounced[-5:], [b"more%d" % (n,) for n in range(5)])

        b.transport.resumeProducing()
        a.write(b"<message from='other.example.net' to='old.example.net' id='last'/>")
        yield b.expect(rb"<message [^>]*id='last'")
        delivered = re.findall(rb"<message [^>]*id='((?:fill|more)\d+)'", b.received)
        self.assertEqual(sorted(delivered + bounced), sorted(sent))
        self.assertEqual(delivered, [ident for ident in sent if ident not in bounced])
        self.assertFalse(session.paused)
