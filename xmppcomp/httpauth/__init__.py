# -*- test-case-name: tests.test_httpauth_web -*-
"""
XEP-0070, Verifying HTTP Requests via XMPP: an HTTP front that takes a JID
and a transaction id as Basic or Digest credentials (realm C{xmpp}) and asks
that JID over XMPP to confirm the request.

Layers: L{xmppcomp.httpauth._protocol} and L{xmppcomp.httpauth._policy}
are pure logic; L{ConfirmationRequester} and L{ConfirmationResponder} are
the XMPP adapters; L{XMPPConfirmationChecker} is the twisted.cred checker;
L{makeConfirmer} wires them into web resources, and L{HTTPAuthListener}
serves them on an endpoint.
"""

from xmppcomp.interfaces import IXMPPConfirmationCredentials
from xmppcomp.httpauth._checker import (
    ConfirmationCredentials,
    XMPPConfirmationChecker,
)
from xmppcomp.httpauth._confirmer import Confirmer, makeConfirmer
from xmppcomp.httpauth._errors import (
    AccessForbidden,
    ConfirmationDenied,
    ConfirmationFailed,
    ConfirmationTimeout,
    ConfirmerUnavailable,
    CouldNotAsk,
    EndToEndRequired,
    RateLimited,
    Replayed,
    StoreUnavailable,
)
from xmppcomp.httpauth._store import IConfirmationStore, MemoryStore
from xmppcomp.httpauth._redis import RedisStore, parseRedisEndpoint
from xmppcomp.httpauth._policy import AccessRule, AccessRules, Attempt, Ledger, Limits, bareJID, checkPrefix, ruleDomain
from xmppcomp.httpauth._config import (
    DEFAULT_HTTP_LISTEN,
    HTTPAUTH_MODES,
    LOOPBACK_HOSTS,
    HTTPAuthConfig,
    StoreConfig,
)
from xmppcomp.httpauth._protocol import (
    ConfirmRequest,
    CredentialsError,
    MalformedConfirm,
    MalformedHeader,
    MalformedJID,
    MissingTransactionId,
    Outcome,
    XMPPCredentials,
)
from xmppcomp.httpauth._frontend import PROFILES, Frontend, WebServerProfile, allowedHost, parseNetworks
from xmppcomp.httpauth._health import Check, HealthResource, checkHealthPath, withHealth
from xmppcomp.httpauth._listener import ConnectionTracker, HTTPAuthListener, isPublic, listeningURL
from xmppcomp.httpauth._proxy import UpstreamProxyResource, checkUpstream
from xmppcomp.httpauth._site import ConfirmerSite, checkAccessLog, checkServerHeaderValue
from xmppcomp.httpauth._static import ConfinedFile
from xmppcomp.httpauth._target import BadTarget, Origin, Target, canonicalTarget, parseHost, parseOrigin
from xmppcomp.httpauth._web import JID_HEADER, ForwardAuthResource, ProtectedResource
from xmppcomp.httpauth._xmpp import (
    ConfirmationPolicy,
    ConfirmationRequester,
    ConfirmationResponder,
    IncomingConfirmation,
)

__all__ = [
    "DEFAULT_HTTP_LISTEN",
    "HTTPAUTH_MODES",
    "HTTPAuthConfig",
    "LOOPBACK_HOSTS",
    "parseHost",
    "parseNetworks",
    "parseOrigin",
    "BadTarget",
    "ConfinedFile",
    "ConfirmerSite",
    "checkAccessLog",
    "checkServerHeaderValue",
    "ConnectionTracker",
    "HTTPAuthListener",
    "Check",
    "HealthResource",
    "checkHealthPath",
    "withHealth",
    "Frontend",
    "Origin",
    "PROFILES",
    "allowedHost",
    "Target",
    "WebServerProfile",
    "canonicalTarget",
    "isPublic",
    "listeningURL",
    "AccessForbidden",
    "AccessRule",
    "AccessRules",
    "bareJID",
    "checkPrefix",
    "ruleDomain",
    "Attempt",
    "ConfirmRequest",
    "ConfirmationCredentials",
    "ConfirmationDenied",
    "ConfirmationFailed",
    "ConfirmationPolicy",
    "ConfirmationRequester",
    "ConfirmationResponder",
    "ConfirmationTimeout",
    "Confirmer",
    "ConfirmerUnavailable",
    "CouldNotAsk",
    "EndToEndRequired",
    "CredentialsError",
    "ForwardAuthResource",
    "IXMPPConfirmationCredentials",
    "IncomingConfirmation",
    "JID_HEADER",
    "IConfirmationStore",
    "Ledger",
    "Limits",
    "MemoryStore",
    "MalformedConfirm",
    "MalformedHeader",
    "MalformedJID",
    "MissingTransactionId",
    "Outcome",
    "ProtectedResource",
    "RateLimited",
    "RedisStore",
    "Replayed",
    "StoreConfig",
    "StoreUnavailable",
    "UpstreamProxyResource",
    "checkUpstream",
    "XMPPConfirmationChecker",
    "XMPPCredentials",
    "makeConfirmer",
    "parseRedisEndpoint",
]
