# -*- test-case-name: tests.test_stream_sasl -*-
"""
SASL for component connections (RFC 6120 section 6, XEP-0225 section 3),
both ends, as pure logic: SCRAM-SHA-1, SCRAM-SHA-256 and their C{-PLUS}
forms through scramp, PLAIN (inside TLS only) and EXTERNAL; the identity is
always a domain. The receiving side checks credentials against salted,
iterated SCRAM keys and never stores a secret.
"""

from xmppcomp.stream.sasl.initiating import SASLInitiator
from xmppcomp.stream.sasl.mechanisms import (
    ExternalInitiator,
    PlainInitiator,
    ScramInitiator,
    chooseMechanism,
)
from xmppcomp.stream.sasl.receiving import SASLReceiver, SASLStep
from xmppcomp.stream.sasl.store import (
    CredentialFileError,
    FileCredentialStore,
    MemoryCredentialStore,
    ScramKeys,
    deriveKeys,
)

__all__ = [
    "CredentialFileError",
    "ExternalInitiator",
    "FileCredentialStore",
    "MemoryCredentialStore",
    "PlainInitiator",
    "SASLInitiator",
    "SASLReceiver",
    "SASLStep",
    "ScramInitiator",
    "ScramKeys",
    "chooseMechanism",
    "deriveKeys",
]
