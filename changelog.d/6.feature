An XTLS endpoint (``urn:xmpp:tmp:xtls``), ``xmppcomp.xtls``: end-to-end TLS
tunnels between XMPP entities carried in IQs, mutually authenticated with
certificates, with TLS 1.2+ AEAD suites instead of the protoXEP's obsolete
3DES and DH_RSA ones.
