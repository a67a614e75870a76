# -*- test-case-name: tests.test_faults -*-
"""
Fault injection: the connection lost at every byte of a recorded
negotiation (in the middle of TLS, SASL and bind), and a peer that stops
reading.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from .streamhelpers import FakeTLSTransport
from .test_fuzz_stream import SIDES, TRANSCRIPTS, StreamRun, _negotiated


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


class BackPressureTests(SynchronousTestCase):
    """
    What the router does for a session whose peer stopped reading.
    """

    def test_pausedTargetBuffers(self) -> None:
        """
        The router does not look at the target's transport: with the
        target's producer paused, everything routed to it is still written
        into its transport buffer. This pins the current behaviour (see
        docs/security.md): the buffer grows by every stanza sent to a
        session that does not read, bounded only by the senders' rate
        limit and the stream's close timeout when it is closed.
        """
        receiver = StreamRun("receiving", self.patch)
        receiver.feedAll(_negotiated("receiving"))
        receiver.transport.producerState = "paused"
        # A second session on the same router.
        other = receiver.xs.factory.buildProtocol(None)
        transport = FakeTLSTransport()
        other.makeConnection(transport)
        flights = [f.replace(b"a.comp.example.net", b"b.comp.example.net") for f in _negotiated("receiving")]
        for flight in flights:
            other.dataReceived(flight)
        message = b"<message from='b.comp.example.net' to='a.comp.example.net'><body>%s</body></message>" % (
            b"z" * 1000,
        )
        receiver.transport.clear()
        for _ in range(200):
            other.dataReceived(message)
        self.assertGreater(len(receiver.transport.value()), 200 * 1000)
