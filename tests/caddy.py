# -*- test-case-name: tests.test_webserver_headers -*-
"""
A test harness that runs a real Caddy (the Debian package C{caddy}, 2.6.2
in bookworm) on loopback with a private Caddyfile, in front of an
XEP-0070 forward-auth endpoint (L{xmppcomp.httpauth.Confirmer.forwardAuth}).

Everything Caddy writes stays in a private prefix directory: the
Caddyfile, its log, the static files it serves, and its home, data and
configuration directories (C{HOME}, C{XDG_DATA_HOME} and
C{XDG_CONFIG_HOME} of the child are the prefix: Caddy 2.6 makes an empty
C{.step} in its home, its storage under C{caddy/} of the data directory
and, on every start, writes C{autosave.json} under C{caddy/} of the
configuration directory, which C{persist_config off} would prevent but
2.6.2 does not know that global option). It runs in the foreground (C{caddy run}), with no admin
endpoint (C{admin off}) and no automatic HTTPS (C{auto_https off} and a
plain C{http://} site address, so it never tries ACME), listens on a free
port of 127.0.0.1 only (C{bind 127.0.0.1}: the site address alone would
make it listen on every interface), and never reads C{/etc/caddy} nor
touches a system Caddy.

Caddy 2.6 listens with C{SO_REUSEPORT}: a second Caddy of the same user
started on a port the first one holds does not fail, the two share it.
Ports are picked free (L{tests.prosody.freePorts}) just before the start,
so two test runs in parallel are unlikely to meet there; a port held by
any other program makes Caddy exit with C{address already in use}, and
the harness starts it again on a new port. Caddy counts as started once
its log says it serves its configuration and the port accepts a
connection (a connection alone could reach the other program).

The site protects C{/private/*} with C{forward_auth}: Caddy sends the
confirmer a C{GET} of C{/} (the C{uri /} of the block; Caddy keeps the
original query string on it) with every header of the client, plus these,
which it sets itself and so replace any copy the client sent (the
C{caddy} profile):

  - C{X-Forwarded-Method}: the original method;
  - C{X-Forwarded-Uri}: the request target as the client sent it (Caddy's
    C{{http.request.uri}}: not decoded, dot segments and repeated slashes
    kept, with the query; the path and query only for an absolute-form
    target);
  - C{X-Forwarded-Host}: the host the client asked for, port included (for
    an absolute-form target, the target's authority, not C{Host});
  - C{X-Forwarded-Proto}: C{http};
  - C{X-Forwarded-For}: the client's address alone (Caddy replaces what
    the client sent, since no C{trusted_proxies} are configured).

On a 2xx answer, C{copy_headers X-Auth-JID} sets the confirmed JID on the
request that goes on to C{file_server} (an upstream application would see
it; a 2xx answer without C{X-Auth-JID} would make Caddy 2.6.2 set the
literal text C{{http.reverse_proxy.header.X-Auth-Jid}} there rather than
remove the client's copy, but the confirmer always sends one). Caddy does
not send it to the client, so a C{header} directive after C{forward_auth}
copies it to the response, as the nginx harness does with C{add_header}.
Any other answer (401 with all its C{WWW-Authenticate} headers, 403) goes
to the client as the endpoint gave it, and nothing after C{forward_auth}
runs. C{/public/*} is served without authentication, anything else is
404. A test may add directives of its own to the site (C{extra} of
L{startCaddy}).

Use it from a L{twisted.trial.unittest.TestCase}::

    requireCaddy()
    site = yield startCaddy(self, authPort, {"private/index.html": b"..."})
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .prosody import _LOG_TAIL
from .webserver import WebServerHarness, WebSite

__all__ = [
    "CaddyError",
    "CaddyHarness",
    "CaddySite",
    "caddyAvailable",
    "configuration",
    "requireCaddy",
    "startCaddy",
]

#: Where Debian installs the binary.
_CANDIDATES = ("/usr/bin/caddy",)

#: What Caddy logs once it listens with the whole configuration. Until
#: then, a connection that succeeds may have reached another program
#: that holds the port, while Caddy is about to exit.
_READY = b'"msg":"serving initial configuration"'


class CaddyError(Exception):
    """
    Caddy could not be started or stopped; the message carries its output
    and the end of its log.
    """


@attrs.frozen
class CaddySite(WebSite):
    """
    A running private Caddy (L{WebSite}): its prefix is also its C{HOME}
    and XDG data and configuration directories, its C{logFile} has JSON
    lines.
    """


def _quoted(value: str) -> str:
    """
    A Caddyfile string token for C{value} (a path of ours: no quotes, no
    backslashes, no newlines, no placeholders).
    """
    if any(c in value for c in "\"'`\\\n\r{}#"):
        raise ValueError("unexpected character in %r" % (value,))
    return '"%s"' % (value,)


def configuration(site: CaddySite, extraDirectives: Sequence[str] = ()) -> str:
    """
    The private Caddyfile for C{site}.

    @param extraDirectives: more directives or blocks (Caddyfile text, each
        possibly of several lines) for the site block, after the
        harness's C{/private/*} and before the final 404.
    """
    q = _quoted
    return "\n".join(
        [
            "# Written by xmppcomp's tests/caddy.py for one test; loopback only.",
            "{",
            "\tadmin off",
            "\tauto_https off",
            # Stopping waits for requests in progress at most this long.
            "\tgrace_period 2s",
            "\tlog {",
            "\t\toutput file %s {" % q(site.logFile),
            "\t\t\troll_disabled",
            "\t\t}",
            "\t\tlevel INFO",
            "\t}",
            "}",
            "",
            "http://%s:%d {" % (site.host, site.port),
            "\tbind %s" % (site.host,),
            "\troot * %s" % q(site.root),
            "\thandle /public/* {",
            "\t\tfile_server",
            "\t}",
            "\thandle /private/* {",
            # route keeps this order (Caddy would otherwise sort header
            # before forward_auth); only a 2xx answer goes on past
            # forward_auth.
            "\t\troute {",
            "\t\t\tforward_auth %s:%d {" % (site.host, site.authPort),
            "\t\t\t\turi /",
            "\t\t\t\tcopy_headers X-Auth-JID",
            "\t\t\t}",
            # copy_headers sets it on the request only; the client gets
            # it from this.
            "\t\t\theader X-Auth-JID {http.request.header.X-Auth-JID}",
            "\t\t\tfile_server",
            "\t\t}",
            "\t}",
        ]
        + ["\t" + line for block in extraDirectives for line in block.splitlines()]
        + [
            "\thandle {",
            "\t\trespond 404",
            "\t}",
            "}",
            "",
        ]
    )


class CaddyHarness(WebServerHarness):
    """
    Prepares, starts and stops one private Caddy: C{caddy run} in the
    foreground with the Caddyfile; C{extra} are more directives for the
    site block (see L{configuration}). It counts as started once its log
    says it serves its configuration (L{_READY}).
    """

    name = "Caddy"
    executable = "caddy"
    candidates = _CANDIDATES
    error = CaddyError
    siteClass = CaddySite
    configName = "Caddyfile"
    logName = "caddy.log"
    logLabel = "Caddy log"
    harnessAttribute = "caddyHarness"
    bindFailure = "address already in use"

    def configuration(self) -> str:
        assert isinstance(self.site, CaddySite)
        return configuration(self.site, self._extra)

    def arguments(self) -> list[str]:
        return ["caddy", "run", "--config", self.configFile, "--adapter", "caddyfile"]

    def environment(self) -> dict[str, str]:
        """
        The child's whole environment: its home, data and configuration
        directories are the prefix.
        """
        prefix = self.site.prefix
        return {
            **super().environment(),
            "HOME": prefix,
            "XDG_DATA_HOME": prefix,
            "XDG_CONFIG_HOME": prefix,
        }

    def ready(self) -> bool:
        """
        Whether Caddy's log says it serves its configuration.
        """
        try:
            with open(self.site.logFile, "rb") as f:
                return _READY in f.read()
        except OSError:
            return False

    def logTail(self) -> str:
        """
        The end of Caddy's log and of what it printed (what it says
        before it reads the Caddyfile, and why it exits), for failure
        messages.
        """
        if self._process is None:
            return self._logFileTail()
        printed = self._process.output.decode("utf-8", "replace")[-_LOG_TAIL:]
        return "%s\nCaddy's output, end:\n%s" % (self._logFileTail(), printed)


#: The caddy binary or L{None}; L{None} if Caddy is installed, else why
#: its tests cannot run; fail the calling test, with how to install it,
#: when Caddy is missing (a failure, never a skip).
caddyPath = CaddyHarness.path
caddyAvailable = CaddyHarness.available
requireCaddy = CaddyHarness.require


#: Start a private Caddy for one test, C{startCaddy(testCase, authPort,
#: files, reactor=None, extra=())}, C{extra} being more directives for the
#: site block (see L{configuration}); a cleanup stops it, and the harness
#: is set as C{testCase.caddyHarness} (see
#: L{WebServerHarness.startForTest}).
startCaddy = CaddyHarness.startForTest
