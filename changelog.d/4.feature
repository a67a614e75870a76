``xmppcomp.component.Component``, a component as a Twisted service: it
connects over XEP-0225 or XEP-0114 (Prosody, ejabberd, Openfire), binds its
hostnames, reconnects with backoff and binds them again, queues stanzas
while disconnected, and hosts wokkel handlers. ``twistd xmppcomp`` runs one,
on an embedded loopback router when no server is configured.
