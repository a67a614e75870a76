The receiving side as a router, ``twistd xmppcomp-router --config FILE``:
XEP-0225 components authenticate with SASL and bind hostnames (in both
``urn:xmpp:tmp:component`` and ``urn:xmpp:component:0``), XEP-0114
components connect with the handshake, and stanzas are routed between them
with proper bounces; credentials are SCRAM keys managed with
``xmppcomp-credentials``; every limit is explicit.
