# -*- test-case-name: tests.test_tap -*-
"""
C{twistd xmppcomp}: the options of a component, and L{makeService}.

The configuration comes from a TOML file (C{--config FILE}, see
L{xmppcomp.config.loadComponentConfig} and C{docs/examples/component.toml})
and from options; options given explicitly win over the file (C{--hostname}
given on the command line replaces the file's whole C{hostnames} list, and
any trust option replaces the file's C{[component.trust]}). No option takes
a secret: C{--secret-file} and C{--secret-env} name where it is.

Without a server (C{twistd -n xmppcomp} with no options at all) the
component runs against an embedded router on loopback
(L{xmppcomp.embedded.EmbeddedRouter}), so the whole thing runs on a fresh
machine, with a demo agent that confirms HTTP requests (L{xmppcomp.demo}).

L{makeService} builds the tree with
L{xmppcomp.services.serviceFromConfig}, which describes it. The names that
lived here before it moved still import from here: C{serviceFromConfig},
C{makeComponent}, C{addServices}, C{addHTTPAuth}, C{addXTLS},
C{ComponentServices} and the service names (from L{xmppcomp.services}),
C{addDiscovery} (L{xmppcomp.disco}), C{HTTPAuthListener},
C{ConnectionTracker} and C{isPublic} (L{xmppcomp.httpauth}),
C{withMetrics} (L{xmppcomp.metrics}), C{PluginProcess} and
C{GC_THRESHOLDS} (L{xmppcomp._process}) and C{GC_TUNING_FLAG}
(L{xmppcomp._options}).
"""

from __future__ import annotations

import os

from twisted.application.service import IService
from twisted.python import usage

from xmppcomp._options import (
    GC_TUNING_FLAG,
    NEGOTIATION_TIMEOUT_OPTION,
    PluginOptions,
    limitOptions,
)
from xmppcomp._process import GC_THRESHOLDS, PluginProcess
from xmppcomp.config import (
    COMPONENT_LIMIT_KEYS,
    ComponentConfig,
    Override,
    componentConfigFromMapping,
    loadComponentConfig,
)
from xmppcomp.disco import addDiscovery
from xmppcomp.httpauth import ConnectionTracker, HTTPAuthListener, isPublic
from xmppcomp.metrics import Metrics, withMetrics
from xmppcomp.services import (
    COMPONENT_SERVICE,
    EMBEDDED_SERVICE,
    HTTPAUTH_SERVICE,
    ComponentServices,
    addHTTPAuth,
    addServices,
    addXTLS,
    makeComponent,
    serviceFromConfig,
)

__all__ = [
    "COMPONENT_SERVICE",
    "EMBEDDED_SERVICE",
    "GC_THRESHOLDS",
    "GC_TUNING_FLAG",
    "HTTPAUTH_SERVICE",
    "ComponentServices",
    "ConnectionTracker",
    "HTTPAuthListener",
    "Options",
    "PluginProcess",
    "addDiscovery",
    "addHTTPAuth",
    "addServices",
    "addXTLS",
    "isPublic",
    "makeComponent",
    "makeService",
    "serviceFromConfig",
    "withMetrics",
]

#: What C{twistd xmppcomp} calls itself when there is no file.
_COMMAND = "twistd xmppcomp"

_LIMIT_KEYS, _LIMIT_NUMBERS = limitOptions(COMPONENT_LIMIT_KEYS, "component.limits.")


class Options(PluginOptions):
    """
    Options of C{twistd xmppcomp}.

    @ivar componentConfig: the configuration, built by L{postOptions}.
    """

    command = _COMMAND
    synopsis = "[--config FILE] [options]"
    longdesc = (
        "Run an XMPP server component. It connects to a server over XEP-0225 "
        "(jabber:client stream, STARTTLS, SASL as a domain, hostname bind) or "
        "XEP-0114 (jabber:component:accept handshake), binds its hostnames, "
        "answers service discovery for them, and reconnects by itself. "
        "Settings come from a TOML file (--config; see "
        "docs/examples/component.toml) and from these options, which win "
        "over the file. Secrets are never options: --secret-file and "
        "--secret-env say where the secret is. With no server configured, "
        "the component runs against an embedded router on 127.0.0.1 with a "
        "certificate and secret made up at startup, next to a demo agent that "
        "confirms HTTP requests (try: twistd -n xmppcomp). The component runs "
        "the XEP-0070 HTTP-auth confirmer (a web listener on "
        "127.0.0.1:8080 by default, [httpauth]) and an XTLS endpoint "
        "(urn:xmpp:tmp:xtls, [xtls])."
    )

    optParameters = [
        [
            "server",
            "s",
            None,
            "Client endpoint of the server, e.g. tcp:host=127.0.0.1:port=5348 "
            "(STARTTLS) or tls:host=xmpp.example.net:port=5223 (direct TLS). "
            "None: an embedded router on loopback.",
        ],
        [
            "server-domain",
            None,
            None,
            "The server's domain (its certificate must carry it); without a "
            "server, the embedded router's domain (default localhost).",
        ],
        ["protocol", None, None, "xep0225 (the default) or xep0114."],
        [
            "identity",
            None,
            None,
            "The domain to authenticate as with SASL (default: the first "
            "hostname).",
        ],
        ["secret-file", None, None, "File whose first line is the secret."],
        ["secret-env", None, None, "Environment variable holding the secret."],
        ["ca-file", None, None, "Trust the CAs of this PEM bundle for the server."],
        [
            "pinned",
            None,
            None,
            "Trust exactly this (PEM) certificate for the server.",
        ],
        [
            "client-certificate",
            None,
            None,
            "PEM client certificate (for SASL EXTERNAL).",
        ],
        [
            "client-key",
            None,
            None,
            "Its private key (default: in the certificate file).",
        ],
        ["max-queued", None, None, "Stanzas that may wait while disconnected."],
        ["queue-timeout", None, None, "Seconds a stanza may wait for the connection."],
        ["iq-timeout", None, None, "Seconds to wait for an IQ answer."],
        NEGOTIATION_TIMEOUT_OPTION,
        [
            "fatal-retry-delay",
            None,
            None,
            "Seconds to wait after a failure retrying will not fix soon.",
        ],
        ["max-retry-delay", None, None, "Most seconds between attempts to connect after other failures."],
        [
            "embedded-port",
            None,
            None,
            "Loopback TCP port of the embedded router (default: any free one).",
        ],
        [
            "http-listen",
            None,
            None,
            "Server endpoint of the HTTP-auth confirmer, e.g. "
            "tcp:8080:interface=127.0.0.1 (the default) or "
            "ssl:8443:privateKey=key.pem:certKey=cert.pem.",
        ],
        [
            "http-mode",
            None,
            None,
            "protect (serve --http-directory, or a demo page), proxy (to "
            "--http-upstream) or forward-auth (for nginx auth_request, "
            "Traefik, Caddy).",
        ],
        ["http-directory", None, None, "Directory served in protect mode."],
        ["http-upstream", None, None, "Upstream URL of proxy mode."],
        ["xtls-certificate", None, None, "PEM certificate of the component for XTLS."],
        ["xtls-key", None, None, "Its private key (default: in the certificate file)."],
        [
            "xtls-trust",
            None,
            None,
            "PEM bundle of the authorities of XTLS peers' certificates.",
        ],
    ]

    optFlags = [
        [
            "system-trust",
            None,
            "Trust the system's CAs for the server (the default; replaces "
            "the file's [component.trust]).",
        ],
        ["no-httpauth", None, "Do not run the HTTP-auth confirmer."],
        ["no-xtls", None, "Do not run the XTLS endpoint."],
        [
            "metrics",
            None,
            "Serve the Prometheus metrics at /metrics on the HTTP-auth "
            "listener (without authentication: keep that listener on "
            "loopback, or behind a proxy that restricts /metrics).",
        ],
    ]

    compData = usage.Completions(
        optActions={
            "config": usage.CompleteFiles("*.toml"),
            "secret-file": usage.CompleteFiles(),
            "ca-file": usage.CompleteFiles(),
            "pinned": usage.CompleteFiles(),
            "client-certificate": usage.CompleteFiles(),
            "client-key": usage.CompleteFiles(),
            "protocol": usage.CompleteList(["xep0225", "xep0114"]),
            "http-mode": usage.CompleteList(["protect", "proxy", "forward-auth"]),
            "http-directory": usage.CompleteDirs(),
            "xtls-certificate": usage.CompleteFiles(),
            "xtls-key": usage.CompleteFiles(),
            "xtls-trust": usage.CompleteFiles(),
        }
    )

    componentConfig: ComponentConfig

    def __init__(self) -> None:
        super().__init__()
        self["hostname"] = []

    def opt_hostname(self, hostname: str) -> None:
        """
        A hostname to bind (repeatable; replaces the file's list).
        """
        self["hostname"].append(hostname)

    parameterKeys = {
        "server": "component.server",
        "server-domain": "component.server_domain",
        "protocol": "component.protocol",
        "identity": "component.identity",
        "client-certificate": "component.client_certificate",
        "client-key": "component.client_key",
        "ca-file": "component.trust.ca_file",
        "pinned": "component.trust.pinned",
        "embedded-port": "embedded.port",
        "http-listen": "httpauth.listen",
        "http-mode": "httpauth.mode",
        "http-directory": "httpauth.directory",
        "http-upstream": "httpauth.upstream",
        "xtls-certificate": "xtls.certificate",
        "xtls-key": "xtls.key",
        "xtls-trust": "xtls.trust",
    } | _LIMIT_KEYS
    numbers = {"embedded-port": True} | _LIMIT_NUMBERS

    def overrides(self) -> dict[str, Override]:
        """
        The values given explicitly on the command line, by TOML key: those
        of L{parameterKeys}, the repeatable C{--hostname}, the secret's
        place and the trust and service switches.

        @raise usage.UsageError: options that exclude each other are given
            together, or a number is not one.
        """
        if self["secret-file"] is not None and self["secret-env"] is not None:
            raise usage.UsageError("give --secret-file or --secret-env, not both")
        trustOptions = [
            name for name in ("ca-file", "pinned") if self[name] is not None
        ] + (["system-trust"] if self["system-trust"] else [])
        if len(trustOptions) > 1:
            raise usage.UsageError(
                "give one of --ca-file, --pinned or --system-trust, not "
                + " and ".join("--" + name for name in trustOptions)
            )
        overrides = super().overrides()
        if self["hostname"]:
            overrides["component.hostnames"] = Override(list(self["hostname"]), "--hostname")
        for name in ("secret-file", "secret-env"):
            if self[name] is not None:
                overrides["component.secret"] = Override(
                    {name.removeprefix("secret-"): self[name]}, f"--{name}"
                )
        for flag, key, value in (
            ("system-trust", "component.trust.system", True),
            ("no-httpauth", "httpauth.enabled", False),
            ("no-xtls", "xtls.enabled", False),
            ("metrics", "httpauth.metrics", True),
        ):
            if self[flag]:
                overrides[key] = Override(value, f"--{flag}")
        return overrides

    def load(self, overrides: dict[str, Override]) -> None:
        """
        Load the file if one is given, with C{overrides}, check the result,
        and check that the secret can be read now.

        @raise ConfigError: the configuration is not usable.
        """
        if self["config"] is not None:
            config = loadComponentConfig(self["config"], overrides)
        else:
            config = componentConfigFromMapping({}, _COMMAND, overrides, os.getcwd())
        if config.secret is not None:
            config.secret.read()
        self.componentConfig = config


def makeService(options: Options) -> IService:
    """
    Build the service tree for C{twistd xmppcomp} from the checked options
    (L{xmppcomp.services.serviceFromConfig}).

    The process-wide settings (C{--log-level}, C{--no-gc-tuning}; see
    L{PluginProcess}) are made here, and only here: the log level is in
    force from now on, the rest once the tree starts; all of it ends when
    the tree stops.

    @param options: parsed L{Options}.
    @raise SystemExit: a file the configuration names cannot be read any
        more (it was when the options were checked).
    """
    return PluginProcess.build(
        options,
        _COMMAND,
        lambda process: serviceFromConfig(
            options.componentConfig, metrics=Metrics(), process=process
        ),
    )
