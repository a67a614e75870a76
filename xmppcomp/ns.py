# -*- test-case-name: tests.test_package -*-
"""
Namespace constants used across xmppcomp.
"""

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_COMPONENT_ACCEPT = "jabber:component:accept"
NS_XMPP_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_XMPP_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_XML = "http://www.w3.org/XML/1998/namespace"

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"

#: XEP-0440, SASL channel-binding type capability.
NS_SASL_CB = "urn:xmpp:sasl-cb:0"

#: XEP-0225 0.1 (the seed namespace) and 0.2 (the deployed one).
NS_COMPONENT_TMP = "urn:xmpp:tmp:component"
NS_COMPONENT_0 = "urn:xmpp:component:0"

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_PING = "urn:xmpp:ping"
NS_HTTP_AUTH = "http://jabber.org/protocol/http-auth"
NS_XTLS = "urn:xmpp:tmp:xtls"
