# -*- test-case-name: tests.test_httpauth_store_tls -*-
"""
The confirmer's Redis store over TLS (C{[httpauth.store] tls = true},
C{ca_file}, C{server_name}), against a real redis-server listening with
TLS only, its certificate issued by an authority made in the test: the
store serves when the certificate is trusted and carries the name, and
fails closed (L{StoreUnavailable}, nothing decided) when it is not.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory
from twisted.internet.ssl import optionsForClientTLS
from twisted.trial.unittest import TestCase

from xmppcomp.config import componentConfigFromMapping
from xmppcomp.httpauth import StoreUnavailable
from xmppcomp.httpauth._policy import Ask
from xmppcomp.services import redisStoreFromConfig
from xmppcomp.testing import CertificateAuthority, makeCertificateAuthority, writePem

from .redisserver import RedisHarness, _Ping
from .test_httpauth_checker import attempt

#: The name in the Redis server's certificate.
NAME = "redis.test"


class TLSRedisHarness(RedisHarness):
    """
    A private redis-server that listens with TLS only (C{port 0},
    C{tls-port}), with a certificate for L{NAME} issued by C{authority}.
    """

    def __init__(self, directory: str, authority: CertificateAuthority) -> None:
        super().__init__(directory, reactor)
        self.authority = authority
        self.certificate, self.key = writePem(authority.issue([NAME]), self.server.directory)

    def configuration(self) -> str:
        text = super().configuration().replace(f"port {self.server.port}\n", "port 0\n")
        return text + "".join(
            f"{line}\n"
            for line in (
                f"tls-port {self.server.port}",
                f"tls-cert-file {self.certificate}",
                f"tls-key-file {self.key}",
                "tls-auth-clients no",
            )
        )

    def answers(self) -> defer.Deferred[bool]:
        options = optionsForClientTLS(NAME, trustRoot=self.authority.certificate)
        endpoint = wrapClientTLS(options, TCP4ClientEndpoint(reactor, self.server.host, self.server.port, timeout=1))
        d = endpoint.connect(Factory.forProtocol(_Ping))
        return d.addCallbacks(lambda p: p.answered, lambda _: False)


class RedisTLSTests(TestCase):
    """
    The store on a TLS-only Redis; a refused certificate is described
    (what was presented, what was expected), not just a lost connection.
    """

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.authority = makeCertificateAuthority("Redis CA")
        self.harness = TLSRedisHarness(self.mktemp(), self.authority)
        self.addCleanup(self.harness.stop)
        yield self.harness.start()
        self.directory = self.harness.server.directory
        self.caFile = os.path.join(self.directory, "redis-ca.pem")
        with open(self.caFile, "wb") as f:
            f.write(self.authority.pem)

    def store(self, **table: Any) -> Any:
        """
        The store of a component configuration whose C{[httpauth.store]}
        is C{table} with the harness's endpoint, stopped by a cleanup.
        """
        table["redis"] = self.harness.server.endpoint
        config = componentConfigFromMapping(
            {"httpauth": {"store": table}}, os.path.join(self.directory, "component.toml")
        )
        store = redisStoreFromConfig(config.httpauth, reactor)
        self.addCleanup(store.stop)
        return store

    @defer.inlineCallbacks
    def test_trusted(self) -> Any:
        """
        A certificate issued by the configured CA for the configured name:
        the store serves, and says so to a health check.
        """
        store = self.store(tls=True, ca_file=self.caFile, server_name=NAME)
        yield store.start()
        decision = yield store.decide(attempt(transactionId="over-tls"), 30)
        self.assertIsInstance(decision, Ask)
        self.assertIs((yield store.ping()), True)

    @defer.inlineCallbacks
    def test_wrongName(self) -> Any:
        """
        The certificate is not for the name asked: the store does not
        start, and a request fails closed.
        """
        store = self.store(tls=True, ca_file=self.caFile, server_name="other.test")
        failure = yield self.assertFailure(store.start(), StoreUnavailable)
        self.assertIn("the server's certificate for other.test is for redis.test and was expected for other.test",
                      str(failure))
        self.assertIn(f"Redis at {self.harness.server.host}:{self.harness.server.port}", str(failure))
        yield self.assertFailure(store.decide(attempt(transactionId="wrong-name"), 30), StoreUnavailable)
        self.assertIs((yield store.ping()), False)

    @defer.inlineCallbacks
    def test_untrustedAuthority(self) -> Any:
        """
        A CA file of another authority: the same.
        """
        other = os.path.join(self.directory, "other-ca.pem")
        with open(other, "wb") as f:
            f.write(makeCertificateAuthority("Another CA").pem)
        store = self.store(tls=True, ca_file=other, server_name=NAME)
        failure = yield self.assertFailure(store.start(), StoreUnavailable)
        self.assertIn(f"the server's certificate for redis.test is not signed by a CA in the CA file {other}",
                      str(failure))
        self.assertIn(f"Redis at {self.harness.server.host}:{self.harness.server.port}", str(failure))
        yield self.assertFailure(store.decide(attempt(transactionId="untrusted"), 30), StoreUnavailable)

    @defer.inlineCallbacks
    def test_plaintextToTLS(self) -> Any:
        """
        A store without C{tls} against the TLS port fails closed within its
        timeouts, never granting.
        """
        store = self.store(timeout=0.5, connect_timeout=1)
        yield self.assertFailure(store.start(), StoreUnavailable)
        yield self.assertFailure(store.decide(attempt(transactionId="plain"), 30), StoreUnavailable)
