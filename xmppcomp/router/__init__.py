# -*- test-case-name: tests.test_router_service -*-
"""
The receiving side of component connections as a service: listeners,
sessions, the routing table (C{twistd xmppcomp-router}).
"""
