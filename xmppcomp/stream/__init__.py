# -*- test-case-name: tests.test_stream_e2e -*-
"""
The XML stream and its negotiation, both ends: restricted XML (RFC 6120
section 11), stream features with C{<required/>} (XEP-0192), STARTTLS and
SASL.
"""
