# -*- test-case-name: tests.test_xtls_e2e -*-
"""
Helpers of the XTLS tests: two XTLS handlers connected through a
L{StanzaRouter<xmppcomp.testing.StanzaRouter>} (L{Pair}), an observer
that records tunnel events (L{Recorder}), and the other end of a tunnel
written with the standard library's C{ssl} only (L{StdlibPeer}).
"""

from __future__ import annotations

import base64
import ssl
from typing import Any
from xml.etree.ElementTree import Element, XMLPullParser

from twisted.internet.task import Clock
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish
from zope.interface import implementer

from xmppcomp.ns import NS_CLIENT, NS_XTLS
from xmppcomp.testing import (
    CertificateAuthority,
    StanzaEnd,
    StanzaRouter,
    makeCertificateAuthority,
    writePem,
)
from xmppcomp.xtls import ITunnelObserver, XTLSConfiguration, XTLSHandler


def attachHandler(
    router: StanzaRouter, domain: str, handler: XTLSHandler, clock: Clock
) -> StanzaEnd:
    """
    Attach C{handler} to a new end of C{router} for C{domain}, with
    C{clock} as its stream manager's clock.
    """
    return router.attach(domain, handler, clock)


class Pair:
    """
    Two XTLS handlers, for C{alice.example} and C{bob.example}, with
    certificates from one authority, connected through a L{StanzaRouter}.
    """

    def __init__(
        self,
        authority: CertificateAuthority | None = None,
        aliceConfig: dict[str, object] | None = None,
        bobConfig: dict[str, object] | None = None,
        aliceJID: str = "alice.example",
        bobJID: str = "bob.example",
        metrics: Any = None,
    ) -> None:
        """
        @param metrics: the L{xmppcomp.metrics.Metrics} both handlers count
            in (both ends in one process), or C{None}.
        """
        self.authority = authority or makeCertificateAuthority()
        self.clock = Clock()
        self.router = StanzaRouter(self.clock)
        self.aliceJID = JID(aliceJID)
        self.bobJID = JID(bobJID)
        self.alice = XTLSHandler(
            self._config(self.aliceJID, aliceConfig or {}), clock=self.clock, metrics=metrics
        )
        self.bob = XTLSHandler(
            self._config(self.bobJID, bobConfig or {}), clock=self.clock, metrics=metrics
        )
        self.aliceEnd = attachHandler(self.router, self.aliceJID.host, self.alice, self.clock)
        self.bobEnd = attachHandler(self.router, self.bobJID.host, self.bob, self.clock)

    def _config(self, who: JID, overrides: dict[str, object]) -> XTLSConfiguration:
        settings: dict[str, object] = {"trust": [self.authority.certificate]}
        if "certificate" not in overrides:
            if who.user is None:
                settings["certificate"] = self.authority.issue(dnsNames=[who.host], client=True)
            else:
                settings["certificate"] = self.authority.issue(
                    xmppAddrs=[who.userhost()], client=True
                )
        settings.update(overrides)
        return XTLSConfiguration(**settings)  # type: ignore[arg-type]


@implementer(ITunnelObserver)
class Recorder:
    """
    An L{xmppcomp.xtls.ITunnelObserver} that records the events.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, object, object]] = []

    def tunnelOpened(self, tunnel: object) -> None:
        self.events.append(("opened", tunnel, None))

    def tunnelClosed(self, tunnel: object, reason: Exception | None) -> None:
        self.events.append(("closed", tunnel, reason))


class StdlibPeer:
    """
    The other end of a tunnel written with the standard library only:
    C{ssl.SSLObject} over C{ssl.MemoryBIO}, and a little IQ glue. Its
    certificate, from C{authority}, names its JID: an XmppAddr for a user
    JID, a DNS name for a domain. It verifies the other end's certificate
    against C{authority} (a client also checks the name
    C{serverHostname}).

    @ivar plaintext: every byte decrypted from the tunnel.
    @ivar stanzas: the stanzas decrypted from the tunnel, parsed by the
        standard library's C{xml.etree} (tags in Clark notation:
        C{{jabber:client}iq}).
    """

    def __init__(
        self,
        router: StanzaRouter,
        authority: CertificateAuthority,
        jid: str,
        server: bool,
        directory: str,
        serverHostname: str = "comp.example",
    ) -> None:
        self.jid = jid
        address = JID(jid)
        self.end = router.connect(address.host)
        self.end.addObserver("/iq", self.onIQ)
        certificate = (
            authority.issue(xmppAddrs=[address.userhost()], client=True)
            if address.user
            else authority.issue(dnsNames=[address.host], client=True)
        )
        certPath, keyPath = writePem(certificate, directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
        context.load_cert_chain(certPath, keyPath)
        context.load_verify_locations(cadata=authority.pem.decode("ascii"))
        context.verify_mode = ssl.CERT_REQUIRED
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(
            self.incoming, self.outgoing, server_side=server,
            server_hostname=None if server else serverHostname,
        )
        self.peer: str | None = None
        self.handshakeDone = False
        self.plaintext = b""
        self.stanzas: list[Element] = []
        self._parser = XMLPullParser(events=("start", "end"))
        self._parser.feed(f"<stream xmlns='{NS_CLIENT}'>")
        self._depth = 0
        self.serial = 0
        self.methodSent = False

    def iq(self, kind: str, payload: str, identifier: str | None = None) -> None:
        if identifier is None:
            self.serial += 1
            identifier = f"std{self.serial}"
        self.end.send(
            f"<iq type='{kind}' id='{identifier}' from='{self.jid}' to='{self.peer}'>{payload}</iq>"
        )

    def start(self, peer: str) -> None:
        self.peer = peer
        self.iq("set", f"<start xmlns='{NS_XTLS}'/>")

    def advance(self) -> None:
        if not self.handshakeDone:
            try:
                self.tls.do_handshake()
                self.handshakeDone = True
            except ssl.SSLWantReadError:
                pass
        if self.handshakeDone:
            while True:
                try:
                    chunk = self.tls.read(65536)
                except ssl.SSLWantReadError:
                    break
                if not chunk:
                    break
                self.plaintext += chunk
                self._parse(chunk)
        self.flush()

    def _parse(self, chunk: bytes) -> None:
        self._parser.feed(chunk)
        for event, element in self._parser.read_events():
            if event == "start":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 1:
                    self.stanzas.append(element)

    def flush(self) -> None:
        data = self.outgoing.read()
        if data:
            method = "" if self.methodSent else " method='x509'"
            self.methodSent = True
            encoded = base64.b64encode(data).decode("ascii")
            self.iq("set", f"<data xmlns='{NS_XTLS}'{method}>{encoded}</data>")

    def write(self, data: bytes) -> None:
        self.tls.write(data)
        self.flush()

    def onIQ(self, iq: domish.Element) -> None:
        if iq["type"] != "set":
            for child in iq.elements(NS_XTLS, "proceed"):
                self.advance()
            return
        self.peer = iq["from"]
        child = next(iq.elements(NS_XTLS))
        if child.name == "start":
            self.iq("result", f"<proceed xmlns='{NS_XTLS}'/>", iq["id"])
        elif child.name == "data":
            self.incoming.write(base64.b64decode(str(child)))
            self.iq("result", "", iq["id"])
            self.advance()
        elif child.name == "close":
            self.iq("result", f"<closed xmlns='{NS_XTLS}'/>", iq["id"])
