# -*- test-case-name: tests.test_xtls_confirm_prosody -*-
"""
XEP-0070 confirmations through XTLS (issue 21) end to end, with real
processes only: a private Prosody on loopback (L{tests.prosody}) that
relays the tunnel's ciphertext between

  - the confirmer, a real C{twistd xmppcomp} process (L{tests.confirmers})
    connected over XEP-0114 as C{comp.example.test}, with C{[xtls]}
    (a certificate naming its hostname, the test authority as trust) and
    access rules: C{/} through XTLS only for the test user
    (C{require_xtls = ["user@example.test"]}), C{/open} for anyone without
    it;
  - the user's client, another process logged in to Prosody as the test
    user (c2s): C{tests/xtls_responder.py} (a Twisted client with an
    XTLS endpoint and a L{ConfirmationResponder} saying yes to everything,
    through the tunnel a request comes through), or, for a client without
    XTLS, the slixmpp user of C{tests/slixmpp_client.py}, which says yes
    in plaintext.

Every request is a real HTTP request to the confirmer's listener. A
tunnelled yes gives 200; a plaintext yes for the JID that must confirm
through XTLS gives 401 (the same yes on C{/open} gives 200); a certificate
that names another JID, or comes from another authority, gives 401.

Fails, naming the package, when Prosody is missing (L{requireProsody}).
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from xmppcomp.testing import CertificateAuthority, makeCertificateAuthority, writePem

from .confirmers import ConfirmerProcess, ConfirmerSettings
from .slixmppuser import UserProcess, startScript, startUser
from .test_httpauth_e2e import basic
from .test_prosody import ProsodyMixin

#: The user's client with XTLS.
RESPONDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "xtls_responder.py")

#: The protected page (C{/}) and the one without XTLS (C{/open/}).
PAGE = b"<p>through XTLS only</p>\n"
OPEN_PAGE = b"<p>open</p>\n"


class ConfirmThroughProsodyTests(ProsodyMixin, TestCase):
    """
    A C{twistd xmppcomp} confirmer and a user's client, two processes, on
    a real Prosody.
    """

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield ProsodyMixin.setUp(self)
        server = self.server
        self.authority = makeCertificateAuthority()
        self.certificates = os.path.abspath(self.mktemp())
        os.makedirs(self.certificates)
        self.caFile = self.writeAuthority(self.authority)
        certificate, key = writePem(
            self.authority.issue(dnsNames=[server.componentName], client=True), self.certificates
        )
        site = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(site, "open"))
        with open(os.path.join(site, "index.html"), "wb") as f:
            f.write(PAGE)
        with open(os.path.join(site, "open", "index.html"), "wb") as f:
            f.write(OPEN_PAGE)
        settings = ConfirmerSettings(
            server="tcp:host=%s:port=%d" % (server.host, server.componentPort),
            serverDomain=server.domain,
            protocol="xep0114",
            hostname=server.componentName,
            secret=server.componentSecret,
            redis=None,
            xtls={"certificate": certificate, "key": key, "trust": self.caFile},
            rules=[
                {"prefix": "/", "anyone": True, "require_xtls": [server.userJID]},
                {"prefix": "/open", "anyone": True},
            ],
            directory=site,
        )
        self.confirmer = ConfirmerProcess(reactor, self.mktemp(), "confirmer", settings)
        self.addCleanup(self.confirmer.stop)
        yield self.confirmer.start()
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        self.agent = Agent(reactor, pool=pool)

    def writeAuthority(self, authority: CertificateAuthority) -> str:
        """
        Write C{authority}'s certificate to a PEM file.

        @return: its path.
        """
        path = os.path.join(self.certificates, "ca-%d.pem" % (len(os.listdir(self.certificates)),))
        with open(path, "wb") as f:
            f.write(authority.pem)
        return path

    def startResponder(
        self,
        resource: str,
        names: str | None = None,
        authority: CertificateAuthority | None = None,
        requireXTLS: bool = False,
    ) -> defer.Deferred[UserProcess]:
        """
        Log the test user in on C{resource} with C{tests/xtls_responder.py}:
        its certificate names C{names} (default: the user's bare JID), from
        C{authority} (default: the test authority), and it trusts the test
        authority. With C{requireXTLS}, it answers plaintext requests
        C{policy-violation}.
        """
        server = self.server
        issued = (authority or self.authority).issue(
            xmppAddrs=[names or server.userJID], client=True
        )
        certificate, key = writePem(issued, self.certificates)
        full = "%s/%s" % (server.userJID, resource)
        arguments = [full, server.host, str(server.c2sPort)]
        arguments += ["--certificate", certificate, "--key", key, "--trust", self.caFile]
        if requireXTLS:
            arguments.append("--require-xtls")
        d: defer.Deferred[UserProcess] = startScript(
            self, RESPONDER, arguments, server.userPassword, full, reactor
        )
        return d

    @defer.inlineCallbacks
    def fetch(self, path: str, who: str, transactionId: str) -> Any:
        """
        GET C{path} from the confirmer with C{who} and C{transactionId} as
        Basic credentials.

        @return: the status code and the body.
        """
        url = (self.confirmer.url.rstrip("/") + path).encode("ascii")
        headers = Headers({b"authorization": [basic(who, transactionId)]})
        d = self.agent.request(b"GET", url, headers)
        d.addCallback(lambda response: readBody(response).addCallback(lambda body: (response, body)))
        response, body = yield self.wait(d, "an answer to GET %s as %s" % (path, who))
        return response.code, body

    def explain(self, *users: UserProcess) -> str:
        """
        The confirmer's log and what the users printed, for failure
        messages.
        """
        return "\n".join([self.confirmer.logTail(), *(user.describe() for user in users)])

    def confirmerLogged(self, text: str) -> list[str]:
        """
        The lines of the confirmer's log that contain C{text}.
        """
        return [line for line in self.confirmer.logText().splitlines() if text in line]

    def relayedTo(self, who: str) -> list[str]:
        """
        The top tags of the stanzas Prosody received from the component
        for C{who}, as its debug log has them.
        """
        marker = "Received[component]: "
        with open(self.server.logFile, encoding="utf-8", errors="replace") as f:
            tags = [line.split(marker, 1)[1].strip() for line in f if marker in line]
        return [tag for tag in tags if "to='%s'" % (who,) in tag]

    def typeOf(self, tag: str) -> str:
        """
        The C{type} of a stanza's top tag as Prosody logs it.
        """
        _, found, rest = tag.partition(" type='")
        return rest.split("'", 1)[0] if found else ""

    @defer.inlineCallbacks
    def test_tunnelledYes(self) -> Any:
        """
        The user's client answers yes through the tunnel the confirmer
        opened to its full JID: 200 with the page. The client saw the
        request come through the tunnel from the component, and the
        confirmer logged the tunnel with the user's certificate.
        """
        user = yield self.startResponder("phone", requireXTLS=True)
        code, body = yield self.fetch("/", user.jid, "tx-tunnelled")
        self.assertEqual((code, body), (200, PAGE), self.explain(user))
        opened = yield self.wait(user.next("tunnel_opened"), "the tunnel at the client")
        self.assertEqual((opened["peer"], opened["local"]), (self.server.componentName, user.jid))
        asked = yield self.wait(user.next("confirm"), "the request at the client")
        self.assertEqual(
            (asked["tunnelled"], asked["from"], asked["to"], asked["id"], asked["method"]),
            (True, self.server.componentName, user.jid, "tx-tunnelled", "GET"),
        )
        self.assertEqual(asked["url"], "https://www.example.net/")
        self.assertTrue(
            self.confirmerLogged("XTLS tunnel with %s opened" % (user.jid,)), self.explain(user)
        )
        # What Prosody relayed from the component to the client (its debug
        # log has each stanza's top tag): XTLS IQ sets (start, data, close)
        # and results, never the plaintext IQ get or message of XEP-0070.
        relayed = self.relayedTo(user.jid)
        self.assertTrue(relayed, self.prosodyHarness.logTail())
        self.assertEqual(
            {tag.split()[0] for tag in relayed}, {"<iq"}, relayed
        )
        self.assertNotIn("get", {self.typeOf(tag) for tag in relayed}, relayed)

    @defer.inlineCallbacks
    def test_plaintextYesRefused(self) -> Any:
        """
        A client without XTLS, which says yes to every plaintext question:
        for the path the user must confirm through XTLS the tunnel cannot
        open, nothing is asked in plaintext, and the answer is 401 saying
        an end-to-end confirmation is required; on C{/open}, where XTLS is
        not required, the same client's plaintext yes gives 200.
        """
        user = yield startUser(self, self.server, "user", resource="plain")
        code, body = yield self.fetch("/", user.jid, "tx-plain-secure")
        self.assertEqual(code, 401, self.explain(user))
        self.assertIn(b"requires an end-to-end confirmation", body)
        self.assertIn(b"does not do XTLS", body)
        code, body = yield self.fetch("/open/", user.jid, "tx-plain-open")
        self.assertEqual((code, body), (200, OPEN_PAGE), self.explain(user))
        self.assertEqual([event["id"] for event in user.all("confirm")], ["tx-plain-open"])

    @defer.inlineCallbacks
    def test_wrongCertificate(self) -> Any:
        """
        The client's certificate names another JID: the tunnel is refused,
        nothing is asked, 401 with the reason.
        """
        user = yield self.startResponder("wrongname", names="other@" + self.server.domain)
        code, body = yield self.fetch("/", user.jid, "tx-wrong-name")
        self.assertEqual(code, 401, self.explain(user))
        self.assertIn(b"requires an end-to-end confirmation", body)
        self.assertIn(b"its certificate was refused", body)
        self.assertIn(b"no XmppAddr for " + self.server.userJID.encode("ascii"), body)
        self.assertEqual(user.all("confirm"), [], self.explain(user))

    @defer.inlineCallbacks
    def test_untrustedCertificate(self) -> Any:
        """
        The client's certificate names the user but comes from an
        authority the confirmer does not trust: 401, nothing asked.
        """
        user = yield self.startResponder("untrusted", authority=makeCertificateAuthority("other CA"))
        code, body = yield self.fetch("/", user.jid, "tx-untrusted")
        self.assertEqual(code, 401, self.explain(user))
        self.assertIn(b"requires an end-to-end confirmation", body)
        self.assertIn(b"its certificate was refused", body)
        self.assertEqual(user.all("confirm"), [], self.explain(user))
