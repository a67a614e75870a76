# -*- test-case-name: tests.test_routertap -*-
"""
C{twistd xmppcomp-router}: the options of the receiving side (the router
components connect to), and L{makeService}.

The configuration comes from a TOML file (C{--config FILE}, see
L{xmppcomp.config} and C{docs/examples/router.toml}) and from options;
options given explicitly win over the file (a C{--listen} given on the
command line replaces the file's whole C{listen} list). No option takes a
secret: XEP-0114 secrets come from files or the environment, named in the
file, and XEP-0225 credentials from the credentials file.

L{makeService} builds the service with
L{xmppcomp.services.routerServiceFromConfig}.
"""

from __future__ import annotations

from twisted.application.service import IService
from twisted.python import usage

from xmppcomp._options import NEGOTIATION_TIMEOUT_OPTION, PluginOptions, limitOptions
from xmppcomp._process import PluginProcess
from xmppcomp.config import (
    ROUTER_LIMIT_KEYS,
    Override,
    RouterConfig,
    loadRouterConfig,
    routerConfigFromMapping,
)
from xmppcomp.metrics import Metrics
from xmppcomp.services import routerServiceFromConfig

__all__ = ["Options", "makeService"]

#: What C{twistd xmppcomp-router} calls itself when there is no file.
_COMMAND = "twistd xmppcomp-router"

_LIMIT_KEYS, _LIMIT_NUMBERS = limitOptions(ROUTER_LIMIT_KEYS, "limits.")


class Options(PluginOptions):
    """
    Options of C{twistd xmppcomp-router}.

    @ivar routerConfig: the configuration, built by L{postOptions}.
    """

    command = _COMMAND
    synopsis = "[--config FILE] [options]"
    longdesc = (
        "Run an XMPP router that accepts server components: XEP-0225 "
        "(jabber:client stream, STARTTLS, SASL as a domain, hostname bind) "
        "and XEP-0114 (jabber:component:accept handshake). Settings come "
        "from a TOML file (--config; see docs/examples/router.toml) and "
        "from these options, which win over the file. Secrets are never "
        "options: XEP-0114 secrets are files or environment variables named "
        "in the file; XEP-0225 credentials are SCRAM keys in the credentials "
        "file (xmppcomp-credentials FILE add DOMAIN)."
    )

    optParameters = [
        ["domain", "d", None, "The router's own domain (e.g. example.net)."],
        [
            "credentials",
            None,
            None,
            "The SCRAM credentials file (xmppcomp-credentials FILE add DOMAIN).",
        ],
        ["certificate", None, None, "PEM certificate (chain) of the domain."],
        ["key", None, None, "PEM private key (default: in the certificate file)."],
        [
            "client-cas",
            None,
            None,
            "PEM bundle of CAs of components' client certificates "
            "(enables SASL EXTERNAL).",
        ],
        ["max-sessions", None, None, "Concurrent component sessions."],
        ["max-names-per-session", None, None, "Hostnames one session may bind."],
        [
            "max-stanzas-per-second",
            None,
            None,
            "Stanzas per second one session may send.",
        ],
        ["max-stanza-size", None, None, "Bytes of one stanza (at least 10000)."],
        NEGOTIATION_TIMEOUT_OPTION,
        ["max-auth-attempts", None, None, "Failed SASL attempts before closing."],
        ["close-timeout", None, None, "Seconds to wait for a peer's closing tag."],
        [
            "max-stanza-depth",
            None,
            None,
            "Levels elements may nest in a stanza (policy-violation beyond).",
        ],
        [
            "max-buffered-bytes",
            None,
            None,
            "Bytes queued to a session that does not read; more is bounced "
            "with resource-constraint.",
        ],
        [
            "max-bounce-payload",
            None,
            None,
            "Bytes of an undeliverable stanza its bounce echoes; a larger one "
            "comes back as its addressing and the error only.",
        ],
        [
            "idle-timeout",
            None,
            None,
            "Seconds of silence from a session before the router pings it.",
        ],
        [
            "ping-timeout",
            None,
            None,
            "Seconds to wait for data after that ping (connection-timeout).",
        ],
        [
            "auth-failure-limit",
            None,
            None,
            "Failed authentications from one address before it is refused.",
        ],
        [
            "auth-failure-window",
            None,
            None,
            "Seconds over which auth-failure-limit counts.",
        ],
        ["max-negotiating", None, None, "Connections not negotiated yet (authenticated and bound), in all."],
        [
            "max-negotiating-per-source",
            None,
            None,
            "Connections not negotiated yet from one address (IPv6: one /64); more are closed at accept.",
        ],
        ["listen-backlog", None, None, "Listen backlog of endpoints that give none."],
        [
            "metrics-listen",
            None,
            None,
            "Endpoint of an HTTP listener serving Prometheus metrics at "
            "/metrics (default: none; e.g. tcp:9348:interface=127.0.0.1).",
        ],
    ]

    optFlags = [
        [
            "allow-plaintext",
            None,
            "Accept XEP-0225 streams WITHOUT TLS. FOR TESTS ONLY: secrets "
            "and stanzas cross the network in clear.",
        ],
    ]

    compData = usage.Completions(
        optActions={
            "config": usage.CompleteFiles("*.toml"),
            "credentials": usage.CompleteFiles(),
            "certificate": usage.CompleteFiles(),
            "key": usage.CompleteFiles(),
            "client-cas": usage.CompleteFiles(),
        }
    )

    routerConfig: RouterConfig

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["accept-listen"] = []

    def opt_listen(self, description: str) -> None:
        """
        XEP-0225 listener endpoint (repeatable; replaces the file's list).
        """
        self["listen"].append(description)

    def opt_accept_listen(self, description: str) -> None:
        """
        XEP-0114 listener endpoint (repeatable; replaces the file's list).
        """
        self["accept-listen"].append(description)

    parameterKeys = {
        "domain": "domain",
        "credentials": "credentials",
        "certificate": "tls.certificate",
        "key": "tls.key",
        "client-cas": "tls.client_cas",
        "metrics-listen": "metrics_listen",
    } | _LIMIT_KEYS
    numbers = _LIMIT_NUMBERS

    def overrides(self) -> dict[str, Override]:
        """
        The values given explicitly on the command line, by TOML key: those
        of L{parameterKeys}, the repeatable C{--listen} and
        C{--accept-listen}, and C{--allow-plaintext}.

        @raise usage.UsageError: a number is not one.
        """
        overrides = super().overrides()
        for name, key in (("listen", "listen"), ("accept-listen", "accept.listen")):
            if self[name]:
                overrides[key] = Override(list(self[name]), f"--{name}")
        if self["allow-plaintext"]:
            overrides["allow_plaintext"] = Override(True, "--allow-plaintext")
        return overrides

    def load(self, overrides: dict[str, Override]) -> None:
        """
        Load the file if one is given, with C{overrides}, and check the
        result.

        @raise ConfigError: the configuration is not usable.
        @raise usage.UsageError: neither a file nor a domain is given.
        """
        if self["config"] is not None:
            self.routerConfig = loadRouterConfig(self["config"], overrides)
        elif self["domain"] is None:
            raise usage.UsageError(
                "give --config FILE (see docs/examples/router.toml) or at "
                "least --domain DOMAIN with --certificate and --credentials"
            )
        else:
            self.routerConfig = routerConfigFromMapping({}, _COMMAND, overrides)


def makeService(options: Options) -> IService:
    """
    Build the router service from the checked configuration
    (L{xmppcomp.services.routerServiceFromConfig}), with its metrics
    (served on C{metrics_listen}) and the process-wide settings of the
    plugin (C{--log-level}, C{--no-gc-tuning}; see
    L{xmppcomp._process.PluginProcess}), made here and only here: the log
    level is in force from now on, the rest once the service starts; all
    of it ends when the service stops.

    @param options: parsed L{Options}.
    @return: a L{xmppcomp.router.service.RouterService}.
    @raise SystemExit: the configuration cannot be used any more.
    """
    return PluginProcess.build(
        options,
        _COMMAND,
        lambda process: routerServiceFromConfig(
            options.routerConfig, metrics=Metrics(), process=process
        ),
    )
