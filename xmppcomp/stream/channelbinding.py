# -*- test-case-name: tests.test_stream_tls -*-
"""
Channel-binding data of an established TLS session, as a plain value: the
SASL logic consumes it, the TLS adapter produces it.
"""

from __future__ import annotations

import attrs

#: RFC 5929 section 4.
TLS_SERVER_END_POINT = "tls-server-end-point"
#: RFC 9266.
TLS_EXPORTER = "tls-exporter"


@attrs.frozen
class ChannelBindingData:
    """
    What one TLS session offers for SCRAM-*-PLUS channel binding.

    @ivar tlsVersion: the negotiated protocol, as OpenSSL names it
        (C{"TLSv1.2"}, C{"TLSv1.3"}).
    @ivar tlsServerEndPoint: the hash of the server's certificate
        (RFC 5929 section 4.1), or C{None} if there is none.
    @ivar tlsExporter: 32 bytes exported with the label
        C{"EXPORTER-Channel-Binding"} and no context (RFC 9266), or C{None}.
    """

    tlsVersion: str
    tlsServerEndPoint: bytes | None = None
    tlsExporter: bytes | None = None

    def available(self) -> list[str]:
        """
        The channel-binding types this session supports, preferred first:
        C{tls-exporter} on TLS 1.3 (RFC 9266 section 3), then
        C{tls-server-end-point}.
        """
        types = []
        if self.tlsExporter is not None and self.tlsVersion == "TLSv1.3":
            types.append(TLS_EXPORTER)
        if self.tlsServerEndPoint is not None:
            types.append(TLS_SERVER_END_POINT)
        return types

    def get(self, cbType: str) -> bytes | None:
        """
        The binding data for C{cbType}, or C{None} if this session cannot
        provide that type.
        """
        if cbType not in self.available():
            return None
        if cbType == TLS_EXPORTER:
            return self.tlsExporter
        return self.tlsServerEndPoint
