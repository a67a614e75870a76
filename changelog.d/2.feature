Stream negotiation for XEP-0225 component connections, both ends, in
``xmppcomp.stream``: restricted XML (RFC 6120 section 11) with size limits,
STARTTLS with certificate checks (system trust, a CA file or a pinned
certificate), SASL as a domain (SCRAM-SHA-1 and SCRAM-SHA-256 with their
-PLUS forms over ``tls-exporter`` or ``tls-server-end-point``, PLAIN inside
TLS, EXTERNAL), XEP-0192 required features, and every RFC 6120 stream error
that applies.
