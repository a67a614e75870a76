An XEP-0070 HTTP-auth confirmer, ``xmppcomp.httpauth``: protects a local
resource, reverse-proxies to an upstream, or answers nginx ``auth_request``,
Traefik ForwardAuth and Caddy ``forward_auth``; asks JIDs by IQ or message,
opens short sessions so a page's assets do not ask again, refuses replayed
transaction ids, and bounds pending confirmations.
