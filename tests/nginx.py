# -*- test-case-name: tests.test_httpauth_nginx -*-
"""
A test harness that runs a real nginx (the Debian package C{nginx}) on
loopback with a private configuration, in front of an XEP-0070
forward-auth endpoint (L{xmppcomp.httpauth.Confirmer.forwardAuth}).

Everything nginx writes stays in a private prefix directory: the
configuration, the pid file, the error and access logs, the temporary
directories and the static files it serves. It runs in the foreground as a
single process (C{daemon off; master_process off;}), listens on a free port
of 127.0.0.1 only (never port 80), and never reads C{/etc/nginx} nor
touches a system nginx. C{-e} sends even the messages of the start, before
the configuration is read, to the private error log.

The configuration protects C{/private/} with C{auth_request}. The auth
subrequest goes to the confirmer with the headers of its C{nginx} profile,
each set with C{proxy_set_header}, which replaces a copy the client sent
(nginx passes every other client header on as it came, so the endpoint
must read these and no others):

  - C{X-Original-Method}: C{$request_method};
  - C{X-Original-URI}: C{$request_uri}, the request target exactly as the
    client sent it: not decoded, dot segments and repeated slashes kept,
    with the query (for an absolute-form target, its path and query);
  - C{X-Original-Host}: C{$http_host}, the client's C{Host} header with
    the port (C{$host} drops it); not sent at all when the client sent no
    C{Host} (HTTP/1.0);
  - C{X-Original-Proto}: C{$scheme};
  - C{X-Real-IP}: C{$remote_addr}, the client's address.

C{Host} gets C{$http_host} too (harmless: the profile does not read it).
The subrequest carries no body (C{proxy_pass_request_body off} and an
empty C{Content-Length}). On a 401, nginx 1.22's auth_request module
itself copies the I{first} C{WWW-Authenticate} header of the auth answer
to the client (the confirmer puts Basic first); the common recipe of
C{auth_request_set $auth_www $upstream_http_www_authenticate} plus
C{add_header WWW-Authenticate $auth_www always} would send it twice, so it
is not used. The confirmed JID is passed on in C{X-Auth-JID} with
C{auth_request_set} and C{add_header}. C{/public/} is served without
authentication. A test may add C{location} blocks of its own
(C{extra} of L{startNginx}).

Use it from a L{twisted.trial.unittest.TestCase}::

    requireNginx()
    site = yield startNginx(self, authPort, {"private/index.html": b"..."})
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import attrs

from .webserver import WebServerHarness, WebSite

__all__ = [
    "NginxError",
    "NginxHarness",
    "NginxSite",
    "configuration",
    "nginxAvailable",
    "requireNginx",
    "startNginx",
]

#: Where Debian installs the binary (C{/usr/sbin} is not always on C{PATH}).
_CANDIDATES = ("/usr/sbin/nginx",)

#: The location the auth subrequest goes to.
AUTH_LOCATION = "/_xmppauth"


class NginxError(Exception):
    """
    nginx could not be started or stopped; the message carries its output
    and the end of its error log.
    """


@attrs.frozen
class NginxSite(WebSite):
    """
    A running private nginx (L{WebSite}); its C{logFile} is the error log.
    """


def _quoted(value: str) -> str:
    """
    An nginx string literal for C{value} (a path of ours: no quotes, no
    newlines).
    """
    if any(c in value for c in "\"'\\\n\r;{}$"):
        raise ValueError("unexpected character in %r" % (value,))
    return '"%s"' % (value,)


def configuration(site: NginxSite, extraLocations: Sequence[str] = ()) -> str:
    """
    The private nginx configuration for C{site}.

    @param extraLocations: more C{location} blocks (nginx text, each
        possibly of several lines) for the C{server} block, after the
        harness's own.
    """
    q = _quoted
    prefix = site.prefix
    temp = os.path.join(prefix, "temp")
    return "\n".join(
        [
            "# Written by xmppcomp's tests/nginx.py for one test; loopback only.",
            "daemon off;",
            "master_process off;",
            "worker_processes 1;",
            "pid %s;" % q(os.path.join(prefix, "nginx.pid")),
            "error_log %s info;" % q(site.logFile),
            "events { worker_connections 64; }",
            "http {",
            "    access_log %s;" % q(os.path.join(prefix, "access.log")),
            "    client_body_temp_path %s;" % q(os.path.join(temp, "body")),
            "    proxy_temp_path %s;" % q(os.path.join(temp, "proxy")),
            "    fastcgi_temp_path %s;" % q(os.path.join(temp, "fastcgi")),
            "    uwsgi_temp_path %s;" % q(os.path.join(temp, "uwsgi")),
            "    scgi_temp_path %s;" % q(os.path.join(temp, "scgi")),
            "    types { text/html html; text/css css; image/png png; text/plain txt; }",
            "    default_type application/octet-stream;",
            "    server {",
            "        listen %s:%d;" % (site.host, site.port),
            "        server_name localhost;",
            "        root %s;" % q(site.root),
            "        location /public/ { }",
            "        location /private/ {",
            "            auth_request %s;" % (AUTH_LOCATION,),
            # On a 401 nginx itself passes the first WWW-Authenticate of
            # the auth answer on (the confirmer puts Basic first); an
            # add_header for it would send it twice.
            "            auth_request_set $auth_jid $upstream_http_x_auth_jid;",
            "            add_header X-Auth-JID $auth_jid;",
            "        }",
            "        location = %s {" % (AUTH_LOCATION,),
            "            internal;",
            "            proxy_pass http://%s:%d/;" % (site.host, site.authPort),
            "            proxy_pass_request_body off;",
            '            proxy_set_header Content-Length "";',
            # $http_host keeps the port, $host would drop it.
            "            proxy_set_header Host $http_host;",
            # The nginx profile; proxy_set_header replaces a client's copy.
            "            proxy_set_header X-Original-Method $request_method;",
            "            proxy_set_header X-Original-URI $request_uri;",
            "            proxy_set_header X-Original-Host $http_host;",
            "            proxy_set_header X-Original-Proto $scheme;",
            "            proxy_set_header X-Real-IP $remote_addr;",
            "        }",
        ]
        + ["        " + line for block in extraLocations for line in block.splitlines()]
        + [
            "    }",
            "}",
            "",
        ]
    )


class NginxHarness(WebServerHarness):
    """
    Prepares, starts and stops one private nginx: C{nginx -p PREFIX -c
    CONFIG -e ERRORLOG} in the foreground; C{extra} are more C{location}
    blocks for the C{server} block (see L{configuration}).
    """

    name = "nginx"
    executable = "nginx"
    candidates = _CANDIDATES
    error = NginxError
    siteClass = NginxSite
    configName = "nginx.conf"
    logName = "error.log"
    logLabel = "nginx error log"
    harnessAttribute = "nginxHarness"
    bindFailure = "Address already in use"
    directories = ("temp",)

    def configuration(self) -> str:
        assert isinstance(self.site, NginxSite)
        return configuration(self.site, self._extra)

    def arguments(self) -> list[str]:
        site = self.site
        return ["nginx", "-p", site.prefix, "-c", self.configFile, "-e", site.logFile]


#: The nginx binary or L{None}; L{None} if nginx is installed, else why
#: its tests cannot run; fail the calling test, with how to install it,
#: when nginx is missing (a failure, never a skip).
nginxPath = NginxHarness.path
nginxAvailable = NginxHarness.available
requireNginx = NginxHarness.require


#: Start a private nginx for one test, C{startNginx(testCase, authPort,
#: files, reactor=None, extra=())}, C{extra} being more C{location} blocks
#: for the C{server} block (see L{configuration}); a cleanup stops it, and
#: the harness is set as C{testCase.nginxHarness} (see
#: L{WebServerHarness.startForTest}).
startNginx = NginxHarness.startForTest
