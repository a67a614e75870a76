# -*- test-case-name: tests.test_stream_sasl,tests.test_names -*-
"""
The SASL identity of a component: a domain (XEP-0225 section 3).

The rule is L{xmppcomp.jids.normalizeDomain}, the package's one rule for
domains and hostnames; the names here are kept for the modules of this
package that import them.
"""

from __future__ import annotations

from xmppcomp.jids import normalizeDomain, plainDomain

__all__ = ["normalizeDomain", "plainHostname"]

#: L{xmppcomp.jids.plainDomain}, the fast path of L{normalizeDomain}.
plainHostname = plainDomain
