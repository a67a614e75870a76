# -*- test-case-name: tests.test_config -*-
"""
Tests for L{xmppcomp.config}: loading the router's TOML file, merging
overrides, and refusing every malformed configuration with a message that
names the file, the key and the fix.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from xmppcomp.config import (
    DEFAULT_ACCEPT_LISTEN,
    ConfigError,
    Override,
    RouterConfig,
    RouterLimits,
    SecretRef,
    loadRouterConfig,
    routerConfigFromMapping,
)
from xmppcomp.stream.sasl import FileCredentialStore
from xmppcomp.testing import makeCertificateAuthority, writePem

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "router.toml"


def makeRouterFiles(directory: str | os.PathLike[str]) -> dict[str, str]:
    """
    Create, in C{directory}, every file C{docs/examples/router.toml} names:
    C{router.pem}, C{router.key}, C{clients-ca.pem}, C{credentials.json}
    and C{legacy.secret}.

    @return: the paths, by those names.
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    authority = makeCertificateAuthority()
    cert, key = writePem(authority.issue(dnsNames=["example.net"]), directory)
    paths = {
        name: os.path.join(directory, name)
        for name in (
            "router.pem",
            "router.key",
            "clients-ca.pem",
            "credentials.json",
            "legacy.secret",
        )
    }
    os.replace(cert, paths["router.pem"])
    os.replace(key, paths["router.key"])
    with open(paths["clients-ca.pem"], "wb") as f:
        f.write(makeCertificateAuthority("clients CA").pem)
    store = FileCredentialStore(paths["credentials.json"])
    store.add("comp.example.net", "a component secret", iterations=4096)
    store.save()
    with open(paths["legacy.secret"], "w") as f:
        f.write("legacy shared secret\n")
    return paths


class _ConfigTestMixin:
    """
    A directory with the example's files, and a minimal valid mapping.
    """

    mktemp: Any

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        self.paths = makeRouterFiles(self.directory)
        self.source = os.path.join(self.directory, "router.toml")

    def minimal(self, **extra: Any) -> dict[str, Any]:
        """
        A minimal valid document, updated with C{extra}.
        """
        data: dict[str, Any] = {
            "domain": "example.net",
            "credentials": "credentials.json",
            "tls": {"certificate": "router.pem", "key": "router.key"},
        }
        data.update(extra)
        return data

    def load(self, data: dict[str, Any], **kw: Any) -> RouterConfig:
        return routerConfigFromMapping(data, self.source, **kw)

    def fails(self, data: dict[str, Any], *fragments: str, **kw: Any) -> str:
        """
        Loading C{data} raises L{ConfigError} whose message names the file
        and contains every fragment.
        """
        error: Any = self.assertRaises(  # type: ignore[attr-defined]
            ConfigError, self.load, data, **kw
        )
        message = str(error)
        if "overrides" not in kw:
            self.assertIn(self.source, message)  # type: ignore[attr-defined]
        for fragment in fragments:
            self.assertIn(fragment, message)  # type: ignore[attr-defined]
        return message

    def writeToml(self, text: str) -> str:
        with open(self.source, "w", encoding="utf-8") as f:
            f.write(text)
        return self.source


class ExampleTests(_ConfigTestMixin, SynchronousTestCase):
    """
    C{docs/examples/router.toml} loads once the files it names exist.
    """

    def test_exampleLoads(self) -> None:
        """
        The example, copied next to freshly made certificate, key, CA,
        credentials and secret files, loads with every value it gives.
        """
        shutil.copy(EXAMPLE, self.source)
        config = loadRouterConfig(self.source)
        self.assertEqual(config.domain, "example.net")
        self.assertEqual(config.listen, ("tcp:5348:interface=127.0.0.1",))
        self.assertEqual(config.acceptListen, ("tcp:5347:interface=127.0.0.1",))
        self.assertEqual(config.credentials, self.paths["credentials.json"])
        self.assertEqual(config.certificate, self.paths["router.pem"])
        self.assertEqual(config.key, self.paths["router.key"])
        self.assertEqual(config.clientCAs, self.paths["clients-ca.pem"])
        self.assertEqual(
            dict(config.authorization),
            {"comp.example.net": ("comp.example.net", "*.comp.example.net")},
        )
        self.assertEqual(list(config.acceptSecrets), ["legacy.example.net"])
        self.assertEqual(
            config.acceptSecrets["legacy.example.net"].read(), "legacy shared secret"
        )
        self.assertEqual(
            config.limits,
            RouterLimits(
                maxSessions=1000,
                maxNamesPerSession=64,
                maxStanzasPerSecond=5000,
                maxStanzaSize=262144,
                negotiationTimeout=30.0,
                maxAuthAttempts=3,
                closeTimeout=10.0,
            ),
        )
        self.assertFalse(config.allowPlaintext)

    def test_exampleFromElsewhere(self) -> None:
        """
        Relative paths resolve against the TOML file's directory, not the
        current directory.
        """
        shutil.copy(EXAMPLE, self.source)
        elsewhere = os.path.abspath(self.mktemp())
        os.makedirs(elsewhere)
        cwd = os.getcwd()
        os.chdir(elsewhere)
        self.addCleanup(os.chdir, cwd)
        config = loadRouterConfig(os.path.relpath(self.source))
        self.assertEqual(config.certificate, self.paths["router.pem"])

    def test_exampleMissingFiles(self) -> None:
        """
        The example alone, without the files it names, is refused, naming
        the first missing file.
        """
        empty = os.path.abspath(self.mktemp())
        os.makedirs(empty)
        path = os.path.join(empty, "router.toml")
        shutil.copy(EXAMPLE, path)
        error = self.assertRaises(ConfigError, loadRouterConfig, path)
        self.assertIn(path, str(error))
        self.assertIn("does not exist", str(error))


class LoadTests(_ConfigTestMixin, SynchronousTestCase):
    """
    L{loadRouterConfig} and L{routerConfigFromMapping} on valid input.
    """

    def test_minimal(self) -> None:
        """
        A domain, credentials and a certificate are enough; everything else
        takes its default.
        """
        config = self.load(self.minimal())
        self.assertEqual(config.domain, "example.net")
        self.assertEqual(config.listen, ("tcp:5348:interface=127.0.0.1",))
        self.assertEqual(config.acceptListen, DEFAULT_ACCEPT_LISTEN)
        self.assertEqual(config.limits, RouterLimits())
        self.assertEqual(dict(config.acceptSecrets), {})
        self.assertEqual(dict(config.authorization), {})
        self.assertIsNone(config.clientCAs)

    def test_relativePaths(self) -> None:
        """
        Relative paths resolve against the directory of C{source} (or
        C{baseDirectory}); absolute paths stay as they are.
        """
        sub = os.path.join(self.directory, "sub")
        os.makedirs(sub)
        os.replace(self.paths["router.pem"], os.path.join(sub, "router.pem"))
        data = self.minimal(credentials=self.paths["credentials.json"])
        data["tls"]["certificate"] = "sub/router.pem"
        data["tls"]["key"] = "./sub/../router.key"
        config = self.load(data)
        self.assertEqual(config.certificate, os.path.join(sub, "router.pem"))
        self.assertEqual(config.key, self.paths["router.key"])
        self.assertEqual(config.credentials, self.paths["credentials.json"])
        config = routerConfigFromMapping(
            self.minimal(credentials="../credentials.json", tls={
                "certificate": "../sub/router.pem", "key": "../router.key"}),
            "somewhere",
            baseDirectory=sub,
        )
        self.assertEqual(config.credentials, self.paths["credentials.json"])

    def test_keyInCertificateFile(self) -> None:
        """
        Without C{tls.key}, the key is read from the certificate file.
        """
        both = os.path.join(self.directory, "both.pem")
        with open(both, "wb") as f:
            for name in ("router.pem", "router.key"):
                with open(self.paths[name], "rb") as g:
                    f.write(g.read())
        config = self.load(self.minimal(tls={"certificate": "both.pem"}))
        self.assertEqual(config.certificate, both)
        self.assertIsNone(config.key)

    def test_domainNormalised(self) -> None:
        """
        The domain is kept in its canonical form (lower case, no trailing
        dot).
        """
        self.assertEqual(
            self.load(self.minimal(domain="Example.NET.")).domain, "example.net"
        )

    def test_limits(self) -> None:
        """
        Each C{[limits]} key sets its L{RouterLimits} attribute; timeouts
        take integers or floats.
        """
        config = self.load(
            self.minimal(
                limits={
                    "max_sessions": 5,
                    "max_names_per_session": 2,
                    "max_stanzas_per_second": 7,
                    "max_stanza_size": 10000,
                    "negotiation_timeout": 1.5,
                    "max_auth_attempts": 1,
                    "close_timeout": 2,
                }
            )
        )
        self.assertEqual(
            config.limits,
            RouterLimits(5, 2, 7, 10000, 1.5, 1, 2.0),
        )

    def test_plaintextForTests(self) -> None:
        """
        With C{allow_plaintext = true}, no certificate is needed.
        """
        config = self.load(
            {"domain": "example.net", "credentials": "credentials.json",
             "allow_plaintext": True}
        )
        self.assertTrue(config.allowPlaintext)
        self.assertIsNone(config.certificate)

    def test_externalOnly(self) -> None:
        """
        With C{tls.client_cas} (SASL EXTERNAL), credentials are optional.
        """
        data = self.minimal()
        del data["credentials"]
        data["tls"]["client_cas"] = "clients-ca.pem"
        config = self.load(data)
        self.assertIsNone(config.credentials)
        self.assertEqual(config.clientCAs, self.paths["clients-ca.pem"])

    def test_acceptOnly(self) -> None:
        """
        With C{listen = []} and XEP-0114 components, neither TLS nor
        credentials are needed.
        """
        config = self.load(
            {
                "domain": "example.net",
                "listen": [],
                "accept": {"secrets": {"legacy.example.net": {"env": "X_SECRET"}}},
            }
        )
        self.assertEqual(config.listen, ())
        self.assertEqual(
            dict(config.acceptSecrets),
            {
                "legacy.example.net": SecretRef(
                    env="X_SECRET",
                    what=f'{self.source}: accept.secrets."legacy.example.net"',
                )
            },
        )

    def test_loadFile(self) -> None:
        """
        L{loadRouterConfig} parses TOML, with inline secret tables.
        """
        path = self.writeToml(
            'domain = "example.net"\n'
            'credentials = "credentials.json"\n'
            'listen = ["tcp:0:interface=127.0.0.1", "tcp6:0:interface=\\\\:\\\\:1"]\n'
            "[tls]\n"
            'certificate = "router.pem"\n'
            'key = "router.key"\n'
            "[accept.secrets]\n"
            '"a.example.net" = { file = "legacy.secret" }\n'
        )
        config = loadRouterConfig(path)
        self.assertEqual(
            config.listen,
            ("tcp:0:interface=127.0.0.1", "tcp6:0:interface=\\:\\:1"),
        )
        self.assertEqual(
            config.acceptSecrets["a.example.net"].file, self.paths["legacy.secret"]
        )


class OverrideTests(_ConfigTestMixin, SynchronousTestCase):
    """
    Overrides win over the document.
    """

    def test_overridesWin(self) -> None:
        """
        Each override replaces the document's value; a listen list replaces
        the whole list; other keys keep the document's values.
        """
        data = self.minimal(
            listen=["tcp:1:interface=127.0.0.1", "tcp:2:interface=127.0.0.1"],
            limits={"max_sessions": 10, "max_auth_attempts": 9},
        )
        config = self.load(
            data,
            overrides={
                "domain": Override("other.example", "--domain"),
                "listen": Override(["tcp:3:interface=127.0.0.1"], "--listen"),
                "accept.listen": Override(["tcp:4"], "--accept-listen"),
                "limits.max_sessions": Override(20, "--max-sessions"),
                "allow_plaintext": Override(True, "--allow-plaintext"),
            },
        )
        self.assertEqual(config.domain, "other.example")
        self.assertEqual(config.listen, ("tcp:3:interface=127.0.0.1",))
        self.assertEqual(config.acceptListen, ("tcp:4",))
        self.assertEqual(config.limits.maxSessions, 20)
        self.assertEqual(config.limits.maxAuthAttempts, 9)
        self.assertTrue(config.allowPlaintext)

    def test_overridePathsFromCurrentDirectory(self) -> None:
        """
        Relative paths in overrides resolve against the current directory.
        """
        cwd = os.getcwd()
        os.chdir(self.directory)
        self.addCleanup(os.chdir, cwd)
        other = routerConfigFromMapping(
            {"domain": "example.net"},
            "/nonexistent/router.toml",
            overrides={
                "credentials": Override("credentials.json", "--credentials"),
                "tls.certificate": Override("router.pem", "--certificate"),
                "tls.key": Override("router.key", "--key"),
            },
        )
        self.assertEqual(other.certificate, self.paths["router.pem"])
        self.assertEqual(other.credentials, self.paths["credentials.json"])

    def test_overrideErrorNamesOption(self) -> None:
        """
        An error in an override names the option, not the file.
        """
        message = self.fails(
            self.minimal(),
            "--max-sessions must be at least 1",
            overrides={"limits.max_sessions": Override(0, "--max-sessions")},
        )
        self.assertNotIn(self.source, message)

    def test_unknownOverride(self) -> None:
        """
        An override of a key that cannot be overridden is a programming
        error.
        """
        self.assertRaises(
            ValueError,
            self.load,
            self.minimal(),
            overrides={"authorization": Override({}, "--x")},
        )


class ErrorTests(_ConfigTestMixin, SynchronousTestCase):
    """
    Every malformed configuration raises L{ConfigError} naming the file,
    the key and the fix.
    """

    def test_tomlSyntax(self) -> None:
        """
        A TOML syntax error gives the line.
        """
        path = self.writeToml('domain = "example.net"\nlisten = [\n\nmax = =\n')
        error = self.assertRaises(ConfigError, loadRouterConfig, path)
        self.assertIn(path, str(error))
        self.assertIn("not valid TOML", str(error))
        self.assertIn("line 4", str(error))

    def test_notUTF8(self) -> None:
        """
        A file that is not UTF-8 is refused.
        """
        with open(self.source, "wb") as f:
            f.write(b'domain = "\xff"\n')
        error = self.assertRaises(ConfigError, loadRouterConfig, self.source)
        self.assertIn("not valid TOML", str(error))

    def test_missingFile(self) -> None:
        """
        A configuration file that does not exist is refused.
        """
        path = os.path.join(self.directory, "nope.toml")
        error = self.assertRaises(ConfigError, loadRouterConfig, path)
        self.assertIn(path, str(error))
        self.assertIn("cannot read", str(error))

    def test_unknownTopLevelKey(self) -> None:
        """
        An unknown key is refused, with the nearest known key.
        """
        self.fails(
            self.minimal(domian="x"),
            "unknown key 'domian'",
            "did you mean 'domain'",
        )

    def test_unknownTableKey(self) -> None:
        """
        An unknown key in a table is named with its table.
        """
        self.fails(
            self.minimal(limits={"max_session": 3}),
            "unknown key 'limits.max_session'",
            "'max_sessions'",
        )
        self.fails(
            self.minimal(tls={"certificate": "router.pem", "allow_plaintext": True}),
            "unknown key 'tls.allow_plaintext'",
            "top-level",
        )
        self.fails(
            self.minimal(accept={"listne": []}),
            "unknown key 'accept.listne'",
        )

    def test_tableNotTable(self) -> None:
        """
        C{tls}, C{accept} and C{limits} must be tables.
        """
        self.fails(self.minimal(limits=5), "limits must be a table")
        self.fails(self.minimal(tls="router.pem"), "tls must be a table")

    def test_missingDomain(self) -> None:
        """
        A missing domain is refused, saying how to add it.
        """
        data = self.minimal()
        del data["domain"]
        self.fails(data, "domain is missing", 'domain = "example.net"')

    def test_badDomain(self) -> None:
        """
        The domain must be a domain.
        """
        self.fails(self.minimal(domain=""), "domain must be a non-empty string")
        self.fails(self.minimal(domain=5), "domain must be", "an integer")
        self.fails(self.minimal(domain="user@example.net"), "is not a domain")

    def test_wrongTypes(self) -> None:
        """
        Values of the wrong type are refused, naming the key and the type.
        """
        self.fails(self.minimal(credentials=3), "credentials must be", "an integer")
        self.fails(self.minimal(allow_plaintext="yes"), "allow_plaintext", "true or false")
        self.fails(
            self.minimal(limits={"max_sessions": "10"}),
            "limits.max_sessions must be an integer",
            "a string",
        )
        self.fails(
            self.minimal(limits={"max_sessions": True}),
            "limits.max_sessions must be an integer",
        )
        self.fails(
            self.minimal(limits={"max_sessions": 1.5}),
            "limits.max_sessions must be an integer",
            "a float",
        )
        self.fails(
            self.minimal(limits={"negotiation_timeout": "30"}),
            "limits.negotiation_timeout must be a number of seconds",
        )
        self.fails(self.minimal(listen="tcp:5348"), "listen must be an array", '["tcp:5348"]')
        self.fails(self.minimal(listen=[5348]), "listen[0] must be an endpoint string")
        self.fails(self.minimal(authorization=["x"]), "authorization must be a table")

    def test_limitsNotPositive(self) -> None:
        """
        Zero and negative limits are refused.
        """
        for key in (
            "max_sessions",
            "max_names_per_session",
            "max_stanzas_per_second",
            "max_auth_attempts",
        ):
            for value in (0, -1):
                self.fails(
                    self.minimal(limits={key: value}),
                    f"limits.{key} must be at least 1, not {value}",
                )
        for key in ("negotiation_timeout", "close_timeout"):
            for value in (0, -1.5, float("nan"), float("inf")):
                self.fails(
                    self.minimal(limits={key: value}),
                    f"limits.{key} must be a finite number of seconds above 0",
                )

    def test_stanzaSizeMinimum(self) -> None:
        """
        C{max_stanza_size} must allow the 10000 bytes RFC 6120 requires.
        """
        self.fails(
            self.minimal(limits={"max_stanza_size": 9999}),
            "limits.max_stanza_size must be at least 10000",
            "RFC 6120",
        )

    def test_inlineSecret(self) -> None:
        """
        A secret written as a literal string is refused, saying to use a
        file or a variable.
        """
        message = self.fails(
            self.minimal(accept={"secrets": {"legacy.example.net": "hunter2"}}),
            'accept.secrets."legacy.example.net"',
            "never written in the configuration",
            "{ file = ",
            "{ env = ",
        )
        self.assertNotIn("hunter2", message)

    def test_secretShapes(self) -> None:
        """
        A secret reference has exactly one of C{file} and C{env}, and
        nothing else; a secret file must exist; the key is a hostname.
        """
        def secret(ref: Any) -> dict[str, Any]:
            return self.minimal(accept={"secrets": {"legacy.example.net": ref}})

        self.fails(secret({}), "exactly one of 'file' or 'env'")
        self.fails(
            secret({"file": "legacy.secret", "env": "X"}),
            "exactly one of 'file' or 'env'",
        )
        self.fails(secret({"value": "x"}), "unknown key 'value'")
        self.fails(secret(3), "must be { file")
        self.fails(secret({"env": ""}), ".env must be a non-empty string")
        self.fails(
            secret({"file": "missing.secret"}),
            'accept.secrets."legacy.example.net".file',
            "missing.secret does not exist",
        )
        self.fails(
            self.minimal(accept={"secrets": {"a@b": {"env": "X"}}}),
            "is not a hostname",
        )
        self.fails(self.minimal(accept={"secrets": []}), "accept.secrets must be a table")

    def test_missingCertificate(self) -> None:
        """
        XEP-0225 listeners without a certificate are refused unless
        C{allow_plaintext} is true.
        """
        data = self.minimal()
        del data["tls"]
        self.fails(data, "tls.certificate is missing", "allow_plaintext = true")
        self.fails(
            self.minimal(tls={"key": "router.key"}),
            "tls.certificate is missing",
            "tls.key is given without",
        )
        self.fails(
            self.minimal(tls={"client_cas": "clients-ca.pem"}, allow_plaintext=True),
            "tls.certificate is missing",
            "SASL EXTERNAL",
        )

    def test_missingFiles(self) -> None:
        """
        Certificate, key, client CAs and credentials files must exist.
        """
        self.fails(
            self.minimal(tls={"certificate": "nope.pem"}),
            "tls.certificate",
            os.path.join(self.directory, "nope.pem") + " does not exist",
        )
        self.fails(
            self.minimal(tls={"certificate": "router.pem", "key": "nope.key"}),
            "tls.key",
            "does not exist",
        )
        self.fails(
            self.minimal(tls={"certificate": "router.pem", "key": "router.key",
                              "client_cas": "nope.pem"}),
            "tls.client_cas",
            "does not exist",
        )
        self.fails(
            self.minimal(credentials="nope.json"),
            "credentials",
            "does not exist",
            "create it with: xmppcomp-credentials FILE add DOMAIN",
        )
        self.fails(
            self.minimal(credentials="."),
            "is not a regular file",
        )

    def test_missingCredentials(self) -> None:
        """
        XEP-0225 listeners without credentials or client CAs are refused.
        """
        data = self.minimal()
        del data["credentials"]
        self.fails(data, "credentials is missing", "xmppcomp-credentials FILE add DOMAIN")

    def test_unusableTLSFiles(self) -> None:
        """
        Files that hold no certificate, no key, or a key of another
        certificate are refused.
        """
        self.fails(
            self.minimal(tls={"certificate": "credentials.json", "key": "router.key"}),
            "tls.certificate",
            "no valid PEM certificate",
        )
        self.fails(
            self.minimal(tls={"certificate": "router.pem", "key": "clients-ca.pem"}),
            "tls.key",
            "no valid PEM private key",
        )
        self.fails(
            self.minimal(tls={"certificate": "router.pem"}),
            "tls.certificate",
            'tls.key = "router.key"',
        )
        otherCert, otherKey = writePem(
            makeCertificateAuthority().issue(dnsNames=["example.net"]), self.directory
        )
        self.fails(
            self.minimal(tls={"certificate": "router.pem", "key": otherKey}),
            "tls.key",
            "does not belong to the certificate",
        )
        self.fails(
            self.minimal(tls={"certificate": "router.pem", "key": "router.key",
                              "client_cas": "router.key"}),
            "tls.client_cas",
            "no valid PEM certificate",
        )

    def test_encryptedKey(self) -> None:
        """
        An encrypted private key is refused, saying to decrypt it.
        """
        from cryptography.hazmat.primitives import serialization

        with open(self.paths["router.key"], "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        with open(self.paths["router.key"], "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.BestAvailableEncryption(b"pw"),
                )
            )
        self.fails(self.minimal(), "tls.key", "is encrypted")

    def test_malformedEndpoints(self) -> None:
        """
        Endpoint strings that do not parse are refused, with the index in
        the list; nothing listens while checking.
        """
        for bad in ("tcp:abc", "foo:1", "", "tcp", "tcp:1:bogus=2"):
            self.fails(
                self.minimal(listen=["tcp:0", bad]),
                "listen[1]",
                f"{bad!r} is not a valid server endpoint string",
            )
        self.fails(
            self.minimal(accept={"listen": ["nope:1"]}),
            "accept.listen[0]",
            "not a valid server endpoint string",
        )

    def test_ephemeralEndpoints(self) -> None:
        """
        The same port-0 endpoint may serve both kinds of listener (each gets
        its own port), as tests do.
        """
        endpoint = "tcp:0:interface=127.0.0.1"
        config = self.load(
            self.minimal(
                listen=[endpoint],
                accept={"listen": [endpoint], "secrets": {"a.example": {"env": "X"}}},
            )
        )
        self.assertEqual((config.listen, config.acceptListen), ((endpoint,), (endpoint,)))

    def test_nothingToServe(self) -> None:
        """
        No XEP-0225 listener and no XEP-0114 component is refused.
        """
        self.fails(self.minimal(listen=[]), "nothing to serve")

    def test_badAuthorization(self) -> None:
        """
        Malformed authorization entries are refused with the identity and
        pattern at fault.
        """
        self.fails(
            self.minimal(authorization={"comp.example.net": ["*"]}),
            "authorization",
            "'*'",
        )
        self.fails(
            self.minimal(authorization={"comp.example.net": "comp.example.net"}),
            "authorization",
            "list",
        )
        self.fails(
            self.minimal(authorization={"a@b": ["x.example"]}),
            "authorization",
            "'a@b'",
        )

    def test_sharedNames(self) -> None:
        """
        C{shared_names} lists hostname patterns, in the syntax of
        [authorization]; by default there are none.
        """
        self.assertEqual(self.load(self.minimal()).sharedNames, ())
        config = self.load(self.minimal(shared_names=["component.example.net", "*.balanced.example.net"]))
        self.assertEqual(config.sharedNames, ("component.example.net", "*.balanced.example.net"))

    def test_badSharedNames(self) -> None:
        """
        Malformed C{shared_names} are refused, naming the entry at fault
        and the form to write.
        """
        example = '["component.example.net", "*.balanced.example.net"]'
        self.fails(
            self.minimal(shared_names="component.example.net"),
            'shared_names must be an array of hostname patterns such as ["component.example.net"], not a single '
            'string; write it as ["component.example.net"]',
        )
        self.fails(self.minimal(shared_names={"a": "b"}), "shared_names must be an array of hostname patterns such as",
                   "not a table")
        self.fails(
            self.minimal(shared_names=["ok.example.net", "*"]),
            "shared_names[1]: the hostname pattern '*' is refused: it would allow every hostname",
            example,
        )
        self.fails(
            self.minimal(shared_names=["a*.example.net"]),
            "shared_names[0]: the hostname pattern 'a*.example.net' is malformed",
            "'*' is only allowed as the whole first label",
        )
        self.fails(
            self.minimal(shared_names=["bad..example.net"]),
            "shared_names[0]: the hostname pattern 'bad..example.net' is malformed: it has an empty label",
        )
        self.fails(self.minimal(shared_names=[3]), "shared_names[0] must be a non-empty string, not an integer")
        self.fails(self.minimal(shared_name=[]), "unknown key 'shared_name' (did you mean 'shared_names'?)")

    def test_notAMapping(self) -> None:
        """
        A document that is not a table is refused.
        """
        self.fails([], "must be a table of keys")  # type: ignore[arg-type]


class SecretRefTests(SynchronousTestCase):
    """
    L{SecretRef} reads secrets from a file or the environment.
    """

    def test_fromFile(self) -> None:
        """
        The secret is the first line of the file, stripped.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("  s3cret \nsecond line\n")
        self.assertEqual(SecretRef(file=path).read(), "s3cret")

    def test_fromEnvironment(self) -> None:
        """
        The secret is the value of the variable.
        """
        self.patch(os, "environ", {"XMPPCOMP_TEST_SECRET": "from env"})
        self.assertEqual(SecretRef(env="XMPPCOMP_TEST_SECRET").read(), "from env")

    def test_errors(self) -> None:
        """
        Missing or empty files and variables raise L{ConfigError} naming
        them; exactly one source must be given.
        """
        self.patch(os, "environ", {"EMPTY": ""})
        path = self.mktemp()
        error = self.assertRaises(ConfigError, SecretRef(file=path, what="w").read)
        self.assertIn(path, str(error))
        with open(path, "w") as f:
            f.write("\n")
        error = self.assertRaises(ConfigError, SecretRef(file=path).read)
        self.assertIn("is empty", str(error))
        error = self.assertRaises(ConfigError, SecretRef(env="EMPTY").read)
        self.assertIn("EMPTY", str(error))
        error = self.assertRaises(ConfigError, SecretRef(env="UNSET").read)
        self.assertIn("UNSET", str(error))
        self.assertRaises(ConfigError, SecretRef)
        self.assertRaises(ConfigError, SecretRef, file="a", env="b")


class _ComponentFilesMixin:
    """
    A directory for the component's files, and L{load} / L{fails} over
    C{componentConfigFromMapping} with the directory as base.
    """

    mktemp: Any
    assertIn: Any
    assertRaises: Any

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def load(self, data: dict[str, Any], overrides: dict[str, Override] | None = None) -> Any:
        from xmppcomp.config import componentConfigFromMapping

        return componentConfigFromMapping(data, "c.toml", overrides, self.directory)

    def fails(self, data: dict[str, Any], *fragments: str) -> str:
        error = self.assertRaises(ConfigError, self.load, data)
        for fragment in fragments:
            self.assertIn(fragment, str(error))
        return str(error)


class StoreConfigTests(_ComponentFilesMixin, SynchronousTestCase):
    """
    The C{[httpauth.store]} table becomes an
    L{xmppcomp.httpauth.StoreConfig} (issue 19).
    """

    def store(self, table: dict[str, Any]) -> Any:
        return self.load(
            {"component": {"hostnames": ["a.localhost"]}, "httpauth": {"allowed_hosts": ["a"], "store": table}}
        ).httpauth.store

    def fails(self, data: dict[str, Any], *fragments: str) -> str:
        return super().fails(
            {"component": {"hostnames": ["a.localhost"]}, "httpauth": {"allowed_hosts": ["a"], "store": data}},
            *fragments,
        )

    def test_defaults(self) -> None:
        """
        Without the table the state stays in memory; Redis commands get 1 s.
        """
        from xmppcomp.httpauth import StoreConfig

        store = self.load({"component": {"hostnames": ["a.localhost"]}, "httpauth": {"allowed_hosts": ["a"]}}).httpauth.store
        self.assertEqual(store, StoreConfig())
        self.assertIsNone(store.redis)
        self.assertEqual((store.prefix, store.timeout, store.tls), ("xmppcomp:", 1.0, False))

    def test_everyKey(self) -> None:
        """
        Every key is read: the endpoint, the prefix, the password as a
        secret reference, the timeouts, TLS with its CA file and name.
        """
        from xmppcomp.configvalues import SecretRef

        with open(self.path("ca.pem"), "w") as f:
            f.write("not checked here\n")
        store = self.store(
            {
                "redis": "tcp:host=redis.example.net:port=6380",
                "prefix": "site1:",
                "password": {"env": "REDIS_PASSWORD"},
                "timeout": 0.5,
                "connect_timeout": 2,
                "reconnect_max_delay": 10,
                "tls": True,
                "ca_file": "ca.pem",
                "server_name": "Redis.Example.net",
            }
        )
        self.assertEqual(store.redis, "tcp:host=redis.example.net:port=6380")
        self.assertEqual(store.prefix, "site1:")
        self.assertEqual(store.password.env, "REDIS_PASSWORD")
        self.assertIsInstance(store.password, SecretRef)
        self.assertEqual((store.timeout, store.connectTimeout, store.reconnectMaxDelay), (0.5, 2.0, 10.0))
        self.assertEqual((store.tls, store.caFile, store.serverName), (True, self.path("ca.pem"), "redis.example.net"))

    def test_badValues(self) -> None:
        """
        Bad values are refused with the key, what is wrong and the fix.
        """
        self.fails({"redis": "unix:/run/redis.sock"}, "httpauth.store.redis", "only tcp:host=...:port=...",
                   '"tcp:host=127.0.0.1:port=6379"')
        self.fails({"redis": "tcp:host=a:port=1:timeout=3"}, "httpauth.store.redis", "unknown parameter 'timeout'")
        self.fails({"redis": 6379}, "httpauth.store.redis", "must be a non-empty string")
        self.fails({"password": "hunter2"}, "httpauth.store.password", "a secret is never written in the configuration")
        self.fails({"timeout": 0}, "httpauth.store.timeout", "above 0")
        self.fails({"timeout": "1s"}, "httpauth.store.timeout", "must be a number of seconds")
        self.fails({"tls": "yes"}, "httpauth.store.tls", "true or false")
        self.fails({"ca_file": "missing.pem"}, "httpauth.store.ca_file", "does not exist")
        self.fails({"servername": "x"}, "unknown key 'httpauth.store.servername'", "server_name")

    def test_tlsSettingsWithoutTLS(self) -> None:
        """
        C{ca_file} or C{server_name} without C{tls = true} is refused when
        the file is loaded (by L{xmppcomp.httpauth.StoreConfig} itself), not
        only once the store is built at start.
        """
        from xmppcomp.config import loadComponentConfig
        from xmppcomp.httpauth import StoreConfig

        with open(self.path("ca.pem"), "w") as f:
            f.write("read when the store is built\n")
        path = self.path("c.toml")
        for line, key in [('ca_file = "ca.pem"', "ca_file"), ('server_name = "redis.example.net"', "server_name")]:
            with open(path, "w") as f:
                f.write(f'[httpauth]\nallowed_hosts = ["a"]\n[httpauth.store]\nredis = "tcp:host=a:port=1"\n{line}\n')
            error = self.assertRaises(ConfigError, loadComponentConfig, path)
            self.assertIn(f"{path}: httpauth.store: {key} is a TLS setting, and tls is false; add tls = true (or "
                          "remove it)", str(error))
        self.assertRaises(ValueError, StoreConfig, caFile="ca.pem")


class HTTPAuthConfigTests(_ComponentFilesMixin, SynchronousTestCase):
    """
    The component's C{[httpauth]} table becomes a checked
    L{xmppcomp.httpauth.HTTPAuthConfig}.
    """

    def test_defaults(self) -> None:
        """
        Without C{[httpauth]}: enabled, on 127.0.0.1:8080 only, protecting
        the demo page, asking from the first hostname within 120 seconds,
        anyone allowed, default limits.
        """
        from xmppcomp.httpauth import AccessRules, Limits

        httpauth = self.load({"component": {"hostnames": ["a.localhost", "b.localhost"]}}).httpauth
        self.assertTrue(httpauth.enabled)
        self.assertEqual(httpauth.listen, "tcp:8080:interface=127.0.0.1")
        self.assertEqual((httpauth.mode, httpauth.directory, httpauth.upstream), ("protect", None, None))
        self.assertIsNone(httpauth.publicOrigin)
        self.assertEqual(httpauth.timeout, 120.0)
        self.assertEqual(httpauth.fromHostname, "a.localhost")
        self.assertEqual(httpauth.rules, AccessRules.anyone())
        self.assertEqual(httpauth.limits, Limits())
        self.assertFalse(httpauth.serverTiming)
        self.assertEqual(httpauth.accessLog, "log")

    def test_everyKey(self) -> None:
        """
        Every key is read: the directory resolves against the base
        directory, the public origin loses its trailing slash, rules become
        L{AccessRules} (bare JIDs, normalised domains), limits L{Limits}.
        """
        from xmppcomp.httpauth import AccessRule, AccessRules, Limits

        os.makedirs(self.path("site"))
        httpauth = self.load(
            {
                "component": {"hostnames": ["a.localhost", "b.localhost"]},
                "httpauth": {
                    "enabled": False,
                    "listen": r"tcp:0:interface=\:\:1",
                    "mode": "protect",
                    "directory": "site",
                    "public_origin": "https://www.example.net/",
                    "timeout": 30,
                    "from": "B.localhost",
                    "server_timing": True,
                    "access_log": "site/access.log",
                    "rules": [
                        {"prefix": "/", "anyone": True},
                        {
                            "prefix": "/private",
                            "jids": ["Alice@Example.net/phone"],
                            "domains": ["Staff.Example.net"],
                        },
                        {"prefix": "/closed"},
                    ],
                    "limits": {
                        "pending_per_jid": 2,
                        "pending_total": 20,
                        "session_lifetime": 1.5,
                        "window_lifetime": 10,
                        "replay_memory": 3600,
                    },
                },
            }
        ).httpauth
        self.assertFalse(httpauth.enabled)
        self.assertEqual(httpauth.listen, r"tcp:0:interface=\:\:1")
        self.assertEqual(httpauth.directory, self.path("site"))
        self.assertEqual(httpauth.publicOrigin, "https://www.example.net")
        self.assertEqual(httpauth.timeout, 30.0)
        self.assertEqual(httpauth.fromHostname, "b.localhost")
        self.assertTrue(httpauth.serverTiming)
        self.assertEqual(httpauth.accessLog, os.path.join(self.path("site"), "access.log"))
        self.assertEqual(
            httpauth.rules,
            AccessRules(
                [
                    AccessRule("/", anyone=True),
                    AccessRule("/private", jids=["alice@example.net"], domains=["staff.example.net"]),
                    AccessRule("/closed"),
                ]
            ),
        )
        self.assertEqual(httpauth.limits, Limits(2, 20, 1.5, 10.0, 3600.0))

    def test_accessLog(self) -> None:
        """
        C{access_log} is "log", "none" or a file in an existing directory.
        """
        self.assertEqual(self.load({"httpauth": {"access_log": "none"}}).httpauth.accessLog, "none")
        self.assertEqual(self.load({"httpauth": {"access_log": "log"}}).httpauth.accessLog, "log")
        self.fails(
            {"httpauth": {"access_log": "missing/access.log"}},
            "c.toml: httpauth.access_log: the directory of",
            '"none"',
        )

    def test_metricsWithoutListener(self) -> None:
        """
        C{metrics = true} with C{enabled = false} is refused when the file
        is loaded, naming the key, not only by the twistd plugin.
        """
        from xmppcomp.config import loadComponentConfig

        path = self.path("c.toml")
        with open(path, "w") as f:
            f.write("[httpauth]\nenabled = false\nmetrics = true\n")
        error = self.assertRaises(ConfigError, loadComponentConfig, path)
        self.assertIn(f"{path}: httpauth.metrics: /metrics is served on the HTTP-auth listener, which is off", str(error))

    def test_accessLogNotADirectory(self) -> None:
        """
        An C{access_log} that is a directory is refused
        (L{xmppcomp.httpauth.checkAccessLog}, which the site uses too), not
        accepted and then failing at start with a traceback.
        """
        from xmppcomp.config import loadComponentConfig

        os.makedirs(self.path("logs"))
        path = self.path("c.toml")
        with open(path, "w") as f:
            f.write('[httpauth]\naccess_log = "logs"\n')
        error = self.assertRaises(ConfigError, loadComponentConfig, path)
        self.assertIn(f'{path}: httpauth.access_log: {self.path("logs")} is a directory; give "log" (the twistd log), '
                      '"none", or a file in an existing directory', str(error))

    def test_modes(self) -> None:
        """
        Proxy mode needs an http(s) upstream; forward-auth takes neither a
        directory nor an upstream; a directory is for protect mode only.
        """
        httpauth = self.load(
            {"httpauth": {"mode": "proxy", "upstream": "http://127.0.0.1:8000/app/"}}
        ).httpauth
        self.assertEqual((httpauth.mode, httpauth.upstream), ("proxy", "http://127.0.0.1:8000/app/"))
        self.assertEqual(self.load({"httpauth": {"mode": "forward-auth"}}).httpauth.mode, "forward-auth")
        self.fails({"httpauth": {"mode": "proxy"}}, "c.toml: httpauth.upstream is missing", 'upstream = "http')
        self.fails(
            {"httpauth": {"mode": "proxy", "upstream": "127.0.0.1:8000"}},
            "c.toml: httpauth.upstream",
            "not an http:// or https:// URL",
        )
        self.fails(
            {"httpauth": {"mode": "forward-auth", "directory": "."}},
            "httpauth.directory: a directory is only served in protect mode",
        )
        self.fails(
            {"httpauth": {"upstream": "http://x"}},
            "httpauth.upstream: upstream is only used in proxy mode",
            'set mode = "proxy"',
        )
        self.fails(
            {"httpauth": {"mode": "forward_auth"}},
            'httpauth.mode must be "protect"',
            "did you mean 'forward-auth'?",
        )
        self.fails({"httpauth": {"mode": 1}}, "httpauth.mode must be a non-empty string")

    def test_upstreamAsTheProxyTakesIt(self) -> None:
        """
        C{upstream} is refused when it has a query, a fragment, user
        information or non-ASCII characters, as the proxy refuses it at
        start (L{xmppcomp.httpauth.checkUpstream}), not accepted and then
        failing with a traceback.
        """
        from xmppcomp.config import loadComponentConfig

        path = self.path("c.toml")
        for upstream, why in [
            ("http://127.0.0.1:8000/?x=1", "it has a query or fragment"),
            ("http://127.0.0.1:8000/app#top", "it has a query or fragment"),
            ("http://user:pw@127.0.0.1:8000/", "it holds user information"),
            ("http://bücher.example/", "it is not ASCII"),
        ]:
            with open(path, "w", encoding="utf-8") as f:
                f.write(f'[httpauth]\nmode = "proxy"\nupstream = "{upstream}"\n')
            error = self.assertRaises(ConfigError, loadComponentConfig, path)
            self.assertIn(f"{path}: httpauth.upstream: {upstream!r} is not an upstream URL ({why}", str(error))
            self.assertIn('such as "http://127.0.0.1:8000"', str(error))

    def test_badValues(self) -> None:
        """
        Each bad value names the file, the key and the fix.
        """
        with open(self.path("file"), "w") as f:
            f.write("x")
        self.fails({"httpauth": {"enabled": "yes"}}, "httpauth.enabled must be true or false")
        self.fails(
            {"httpauth": {"listen": "tcp:http"}},
            "c.toml: httpauth.listen: 'tcp:http' is not a valid server endpoint string",
            '"tcp:8080:interface=127.0.0.1"',
        )
        self.fails({"httpauth": {"listen": ["tcp:8080"]}}, "httpauth.listen must be a non-empty string")
        self.fails({"httpauth": {"directory": "missing"}}, self.path("missing") + " does not exist")
        self.fails({"httpauth": {"directory": "file"}}, "is not a directory")
        self.fails({"httpauth": {"public_origin": "https://x.example/app"}}, "must not have a path")
        self.fails({"httpauth": {"public_origin": "x.example"}}, "is not an origin such as https://example.net")
        self.fails({"httpauth": {"timeout": 0}}, "httpauth.timeout must be a finite number of seconds above 0")
        self.fails({"httpauth": {"timeout": "2m"}}, "httpauth.timeout must be a number of seconds")
        self.fails(
            {"httpauth": {"from": "other.localhost"}},
            "httpauth.from: 'other.localhost' is not one of the component's hostnames "
            "(component.localhost)",
        )
        self.fails({"httpauth": {"limits": {"pending_total": 0}}}, "httpauth.limits.pending_total must be at least 1")
        self.fails(
            {"httpauth": {"limits": {"session_lifetme": 1}}},
            "unknown key 'httpauth.limits.session_lifetme' (did you mean 'session_lifetime'?)",
        )
        self.fails({"httpauth": {"upstreams": "x"}}, "unknown key 'httpauth.upstreams'")
        self.fails(
            {"httpauth": {"web_server": "ngnix"}},
            'c.toml: httpauth.web_server must be "nginx" (forward-auth headers X-Original-URI, X-Real-IP), "traefik" ',
            "or \"caddy\" (forward-auth headers X-Forwarded-Uri, X-Forwarded-For), not 'ngnix' (did you mean 'nginx'?)",
        )
        self.fails({"httpauth": "on"}, "httpauth must be a table")

    def test_arraysAndDirectories(self) -> None:
        """
        Every array of strings says what to write instead of a single
        string, and a directory that does not exist is named as one.
        """
        self.fails(
            {"httpauth": {"allowed_hosts": "example.net"}},
            'httpauth.allowed_hosts must be an array of strings such as ["example.net"], not a single string; '
            'write it as ["example.net"]',
        )
        self.fails({"httpauth": {"trusted_proxies": [""]}}, "httpauth.trusted_proxies[0] must be a non-empty string")
        self.fails({"httpauth": {"directory": "missing"}}, f"the directory {self.path('missing')} does not exist")

    def test_allowedHostsAsTheConfirmerKeepsThem(self) -> None:
        """
        C{allowed_hosts} keeps each host in the form the confirmer compares
        (L{xmppcomp.httpauth.allowedHost}): an IPv4-mapped IPv6 address is
        its IPv4 address, an IPv6 address loses its brackets, a name is
        lowercase.
        """
        from xmppcomp.config import loadComponentConfig

        path = self.path("c.toml")
        with open(path, "w") as f:
            f.write('[httpauth]\nallowed_hosts = ["::ffff:10.0.0.1", "[::1]", "Example.NET"]\n')
        self.assertEqual(loadComponentConfig(path).httpauth.allowedHosts, ("10.0.0.1", "::1", "example.net"))
        with open(path, "w") as f:
            f.write('[httpauth]\nallowed_hosts = ["[::1]:8080"]\n')
        error = self.assertRaises(ConfigError, loadComponentConfig, path)
        self.assertIn(f"{path}: httpauth.allowed_hosts[0]: '[::1]:8080' is not a host name (it has a port; give the "
                      'host name only: any port of it is allowed); give a host name, such as "example.net"', str(error))

    def test_serverHeader(self) -> None:
        """
        C{server_header} is printable ASCII (L{xmppcomp.httpauth.checkServerHeaderValue}, which the site uses too), or
        C{""} for none; a blank one is named as such.
        """
        self.assertIsNone(self.load({"httpauth": {"server_header": ""}}).httpauth.serverHeader)
        self.assertEqual(self.load({"httpauth": {"server_header": "gw/1"}}).httpauth.serverHeader, "gw/1")
        self.fails(
            {"httpauth": {"server_header": "gw\r\nX: y"}},
            "c.toml: httpauth.server_header: 'gw\\r\\nX: y' is not a Server header (not printable ASCII); give "
            'printable ASCII such as "xmppcomp", or "" for no Server header',
        )
        self.fails({"httpauth": {"server_header": " "}}, 'server_header must be a non-empty string, not blank; write it')

    def test_badRules(self) -> None:
        """
        Rules must be a non-empty array of tables with a path prefix, JIDs
        and domains, each named by its index when wrong.
        """
        def rules(*entries: Any) -> dict[str, Any]:
            return {"httpauth": {"rules": list(entries)}}

        self.fails({"httpauth": {"rules": []}}, "httpauth.rules must be a non-empty array of tables")
        self.fails({"httpauth": {"rules": {"prefix": "/"}}}, "httpauth.rules must be a non-empty array")
        self.fails(rules("/"), "httpauth.rules[0] must be a table, not a string")
        self.fails(rules({"anyone": True}), "httpauth.rules[0]: prefix is missing")
        self.fails(
            rules({"prefix": "docs"}),
            "httpauth.rules[0].prefix: 'docs' is not a URL path (a path prefix must start with '/'); "
            'write it as "/docs"',
        )
        self.fails(
            rules({"prefix": "/", "anyone": True}, {"prefix": "/", "jids": []}),
            "httpauth.rules[1]: another rule has the prefix '/'",
        )
        self.fails(rules({"prefix": "/", "jid": ["a@b"]}), "httpauth.rules[0]: unknown key 'jid' (did you mean 'jids'?)")
        self.fails(rules({"prefix": "/", "jids": "a@b"}), "httpauth.rules[0].jids must be an array of strings")
        self.fails(rules({"prefix": "/", "jids": ["a@b", "@"]}), "httpauth.rules[0].jids[1]: '@' is not a JID")
        self.fails(
            rules({"prefix": "/", "domains": ["user@example.net"]}),
            "httpauth.rules[0].domains[0]: 'user@example.net' is not a domain",
        )
        self.fails(rules({"prefix": "/", "anyone": 1}), "httpauth.rules[0].anyone must be true or false")

    def test_rulesAsTheConfirmerReadsThem(self) -> None:
        """
        A rule's prefix, JIDs and domains are read by the functions the
        access rules use (L{xmppcomp.httpauth.checkPrefix},
        L{bareJID<xmppcomp.httpauth.bareJID>},
        L{ruleDomain<xmppcomp.httpauth.ruleDomain>}): a domain keeps the
        form a user's JID is compared in, so that its users are let in; a
        prefix no request path can have (an empty, C{.} or C{..} segment)
        is refused instead of never matching.
        """
        from xmppcomp.config import loadComponentConfig
        from xmppcomp.httpauth._protocol import parseJID

        path = self.path("c.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write('[[httpauth.rules]]\nprefix = "/"\ndomains = ["Bücher.example."]\njids = ["bob@example.net/r"]\n')
        [rule] = loadComponentConfig(path).httpauth.rules.rules
        self.assertEqual((rule.domains, rule.jids), (frozenset({"bücher.example"}), frozenset({"bob@example.net"})))
        self.assertTrue(rule.allows(parseJID("alice@bücher.example")))
        for prefix in ("/private//area", "/docs/./secret", "/docs/.."):
            with open(path, "w") as f:
                f.write(f'[[httpauth.rules]]\nprefix = "{prefix}"\nanyone = true\n')
            error = self.assertRaises(ConfigError, loadComponentConfig, path)
            self.assertIn(
                f"{path}: httpauth.rules[0].prefix: {prefix!r} is not a URL path (it has an empty, '.' or '..' "
                'segment, which no request path has); give the URL path the rule covers as requests are read, such '
                'as "/docs/"',
                str(error),
            )

    def test_rulesMalformedNames(self) -> None:
        """
        A JID or domain that Twisted's stringprep fails on with an
        exception of its own (C{"."}, C{"a@."}, C{"a..b"}) is refused with
        the key, not a traceback.
        """
        from xmppcomp.config import loadComponentConfig

        path = self.path("c.toml")
        for key, name, what in [("domains", ".", "a domain"), ("domains", "a..b", "a domain"), ("jids", "a@.", "a JID"),
                                ("require_xtls", ".", "a bare JID or a domain")]:
            with open(path, "w") as f:
                f.write(f'[[httpauth.rules]]\nprefix = "/"\n{key} = ["{name}"]\n')
            error = self.assertRaises(ConfigError, loadComponentConfig, path)
            self.assertIn(f"{path}: httpauth.rules[0].{key}[0]: {name!r} is not {what} (not a valid JID); give",
                          str(error))

    def test_overrides(self) -> None:
        """
        The listen, mode, directory, upstream and enabled keys can be
        overridden; errors then name the option.
        """
        httpauth = self.load(
            {"httpauth": {"listen": "tcp:8080", "mode": "protect"}},
            {
                "httpauth.listen": Override("tcp:0", "--http-listen"),
                "httpauth.mode": Override("proxy", "--http-mode"),
                "httpauth.upstream": Override("http://u.example", "--http-upstream"),
                "httpauth.enabled": Override(False, "--no-httpauth"),
            },
        ).httpauth
        self.assertEqual(
            (httpauth.listen, httpauth.mode, httpauth.upstream, httpauth.enabled),
            ("tcp:0", "proxy", "http://u.example", False),
        )
        error = self.assertRaises(
            ConfigError, self.load, {}, {"httpauth.directory": Override("nope", "--http-directory")}
        )
        self.assertTrue(str(error).startswith("--http-directory: "), str(error))


class _XTLSFilesMixin(_ComponentFilesMixin):
    """
    An XTLS certificate, key and authority (C{xtls.pem}, C{xtls.key},
    C{ca.pem}) and a C{garbage.pem} in the base directory.
    """

    def setUp(self) -> None:
        super().setUp()
        authority = makeCertificateAuthority()
        cert, key = writePem(authority.issue(dnsNames=["component.localhost"], client=True), self.directory)
        os.replace(cert, self.path("xtls.pem"))
        os.replace(key, self.path("xtls.key"))
        with open(self.path("ca.pem"), "wb") as f:
            f.write(authority.pem)
        with open(self.path("garbage.pem"), "w") as f:
            f.write("garbage\n")


class XTLSConfigTests(_XTLSFilesMixin, SynchronousTestCase):
    """
    The component's C{[xtls]} table becomes a checked
    L{xmppcomp.xtls.XTLSConfig}.
    """

    def test_defaults(self) -> None:
        """
        Without C{[xtls]}: enabled, no files, the handler's default limits.
        """
        from xmppcomp.config import XTLSConfig, XTLSLimits
        from xmppcomp.xtls import XTLSConfiguration

        self.assertEqual(self.load({}).xtls, XTLSConfig())
        limits, handler = XTLSLimits(), XTLSConfiguration()
        self.assertEqual(
            (limits.maxTunnels, limits.maxTunnelsPerPeer, limits.window, limits.chunkSize, limits.maxStanzaSize,
             limits.maxPendingRequests),
            (handler.maxTunnels, handler.maxTunnelsPerPeer, handler.window, handler.chunkSize, handler.maxStanzaSize,
             handler.maxPendingRequests),
        )

    def test_everyKey(self) -> None:
        """
        Every key is read; paths resolve against the base directory.
        """
        from xmppcomp.config import XTLSConfig, XTLSLimits

        xtls = self.load(
            {
                "xtls": {
                    "enabled": False,
                    "certificate": "xtls.pem",
                    "key": "xtls.key",
                    "trust": "ca.pem",
                    "limits": {
                        "max_tunnels": 5,
                        "max_tunnels_per_peer": 2,
                        "window": 3,
                        "chunk_size": 4096,
                        "max_stanza_size": 65536,
                        "max_pending_requests": 7,
                    },
                }
            }
        ).xtls
        self.assertEqual(
            xtls,
            XTLSConfig(
                enabled=False,
                certificate=self.path("xtls.pem"),
                key=self.path("xtls.key"),
                trust=self.path("ca.pem"),
                limits=XTLSLimits(5, 2, 3, 4096, 65536, 7),
            ),
        )

    def test_badValues(self) -> None:
        """
        Missing companions, unreadable files and bad limits name the key
        and the fix.
        """
        self.fails({"xtls": {"key": "xtls.key"}}, "c.toml: xtls.key is given without a certificate")
        self.fails({"xtls": {"trust": "ca.pem"}}, "c.toml: xtls.trust is given without a certificate")
        self.fails(
            {"xtls": {"certificate": "xtls.pem", "key": "xtls.key"}},
            "c.toml: xtls.trust is missing",
            'trust = "xtls-ca.pem"',
        )
        self.fails(
            {"xtls": {"certificate": "nope.pem", "trust": "ca.pem"}},
            "xtls.certificate: the file " + self.path("nope.pem") + " does not exist",
        )
        self.fails(
            {"xtls": {"certificate": "garbage.pem", "key": "xtls.key", "trust": "ca.pem"}},
            "c.toml: xtls.certificate: ",
        )
        self.fails(
            {"xtls": {"certificate": "xtls.pem", "trust": "ca.pem"}},
            "c.toml: xtls.certificate: ",
            "unencrypted private key",
        )
        self.fails(
            {"xtls": {"certificate": "xtls.pem", "key": "xtls.key", "trust": "garbage.pem"}},
            "c.toml: xtls.trust: ",
            "give a PEM bundle of CA certificates",
        )
        self.fails({"xtls": {"enabled": 1}}, "xtls.enabled must be true or false")
        self.fails({"xtls": {"limits": {"window": 0}}}, "xtls.limits.window must be at least 1")
        self.fails(
            {"xtls": {"limits": {"max_pending_requests": 0}}}, "xtls.limits.max_pending_requests must be at least 1"
        )
        self.fails({"xtls": {"limits": {"max_stanza_size": 4096}}}, "xtls.limits.max_stanza_size must be at least 10000")
        self.fails({"xtls": {"limits": {"chunk_size": 1.5}}}, "xtls.limits.chunk_size must be an integer")
        self.fails({"xtls": {"limit": {}}}, "unknown key 'xtls.limit' (did you mean 'limits'?)")

    def test_pins(self) -> None:
        """
        C{[xtls.pins]}: keys normalised as bare JIDs, a fingerprint or an
        array of them, with or without colons, in either case, normalised
        as the logs print them; pins without C{trust} are enough for a
        certificate.
        """
        digest = bytes(range(32))
        colons = digest.hex(":").upper()
        xtls = self.load(
            {
                "xtls": {
                    "certificate": "xtls.pem",
                    "key": "xtls.key",
                    "pins": {
                        "Alice@Example.NET": digest.hex(),
                        "example.org": [colons.lower(), bytes(32).hex(), colons],
                    },
                }
            }
        ).xtls
        self.assertIsNone(xtls.trust)
        self.assertEqual(
            xtls.pins,
            {"alice@example.net": (colons,), "example.org": (colons, bytes(32).hex(":").upper())},
        )
        from xmppcomp.xtls import XTLSConfiguration

        self.assertEqual(
            XTLSConfiguration(pins=dict(xtls.pins)).pins,
            {"alice@example.net": (digest,), "example.org": (digest, bytes(32))},
        )

    def test_pinKeyTrailingDot(self) -> None:
        """
        A pin's key loses its domain's trailing dot (L{xmppcomp.xtls.pinKey},
        RFC 7622 section 3.2), as the addresses of peers have none:
        C{alice@example.net.} pins C{alice@example.net}, and both are one
        key.
        """
        from xmppcomp.config import loadComponentConfig

        good = bytes(32).hex()
        path = self.path("c.toml")
        with open(path, "w") as f:
            f.write(f'[xtls]\ncertificate = "xtls.pem"\nkey = "xtls.key"\n[xtls.pins]\n"alice@example.net." = "{good}"\n')
        self.assertEqual(list(loadComponentConfig(path).xtls.pins), ["alice@example.net"])
        with open(path, "a") as f:
            f.write(f'"alice@example.net" = "{good}"\n')
        error = self.assertRaises(ConfigError, loadComponentConfig, path)
        self.assertIn(f"{path}: xtls.pins.\"alice@example.net\": 'alice@example.net' is pinned twice", str(error))

    def test_badPins(self) -> None:
        """
        A key that is not a bare JID, a fingerprint that is not 64 hex
        digits, an empty array or a key pinned twice name the key and the
        fix.
        """
        good = bytes(32).hex()

        def pins(table: object) -> dict[str, Any]:
            return {"xtls": {"certificate": "xtls.pem", "key": "xtls.key", "trust": "ca.pem", "pins": table}}

        self.fails(pins("x"), "xtls.pins must be a table")
        self.fails(
            pins({"alice@example.net/home": good}),
            'xtls.pins."alice@example.net/home": ',
            "is not a bare JID or a domain (a pin is for a bare JID or a domain, without a resource)",
        )
        self.fails(pins({"a@b@c": good}), "is not a bare JID or a domain", '"alice@example.net" = "AB:CD:..."')
        self.fails(
            pins({"alice@example.net": "AB:CD"}),
            "xtls.pins.\"alice@example.net\"[0]: 'AB:CD' is not a SHA-256 fingerprint (a SHA-256 fingerprint has "
            "64 hex digits (32 bytes), not 4)",
            "openssl x509 -noout -fingerprint -sha256",
        )
        self.fails(pins({"alice@example.net": "g" * 64}), "('g' is not a hex digit)")
        self.fails(pins({"alice@example.net": [good, "A:BC"]}), '"alice@example.net"[1]', "two hex digits")
        self.fails(pins({"alice@example.net": []}), "must be a fingerprint", "not an empty array")
        self.fails(pins({"alice@example.net": 5}), "must be a fingerprint", "not an integer")
        self.fails(
            pins({"alice@example.net": good, "Alice@example.net": good}),
            "'alice@example.net' is pinned twice",
        )
        self.fails(
            {"xtls": {"certificate": "xtls.pem", "key": "xtls.key", "pins": {}}},
            "xtls.trust is missing",
            "or pin the peers' fingerprints in [xtls.pins]",
        )

    def test_overrides(self) -> None:
        """
        Overriding the certificate or the key replaces both of the file's;
        C{xtls.enabled} can be overridden.
        """
        with open(self.path("both.pem"), "w") as f:
            f.write(open(self.path("xtls.pem")).read() + open(self.path("xtls.key")).read())
        data = {"xtls": {"certificate": "xtls.pem", "key": "xtls.key", "trust": "ca.pem"}}
        xtls = self.load(
            data, {"xtls.certificate": Override(self.path("both.pem"), "--xtls-certificate")}
        ).xtls
        self.assertEqual((xtls.certificate, xtls.key), (self.path("both.pem"), None))
        self.assertFalse(self.load(data, {"xtls.enabled": Override(False, "--no-xtls")}).xtls.enabled)


class RequireXTLSConfigTests(_XTLSFilesMixin, SynchronousTestCase):
    """
    C{require_xtls} in the access rules (issue 21): C{true}, or bare JIDs
    and domains; refused where the confirmer could not honour it.
    """

    server = {"server": "tcp:host=127.0.0.1:port=5347", "server_domain": "example.net",
              "hostnames": ["c.example.net"], "protocol": "xep0114", "secret": {"env": "HOME"}}
    xtlsFiles = {"certificate": "xtls.pem", "key": "xtls.key", "trust": "ca.pem"}

    def data(self, requireXTLS: object, **tables: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "component": dict(self.server),
            "httpauth": {"public_origin": "https://example.net",
                         "rules": [{"prefix": "/", "anyone": True, "require_xtls": requireXTLS}]},
            "xtls": dict(self.xtlsFiles),
        }
        data.update(tables)
        return data

    def test_everybody(self) -> None:
        """
        C{require_xtls = true} requires XTLS for every JID of the rule.
        """
        from twisted.words.protocols.jabber.jid import JID

        [rule] = self.load(self.data(True)).httpauth.rules.rules
        self.assertTrue(rule.requireXTLS)
        self.assertTrue(rule.requiresXTLS(JID("anyone@anywhere.example/r")))

    def test_someJIDs(self) -> None:
        """
        An array names bare JIDs (a resource is dropped) and domains; the
        others are asked as before.
        """
        from twisted.words.protocols.jabber.jid import JID

        [rule] = self.load(self.data(["Alice@Example.NET/phone", "example.org."])).httpauth.rules.rules
        self.assertEqual((rule.requireXTLS, rule.xtlsFor), (False, frozenset({"alice@example.net", "example.org"})))
        self.assertTrue(rule.requiresXTLS(JID("alice@example.net/laptop")))
        self.assertTrue(rule.requiresXTLS(JID("bob@example.org/r")))
        self.assertFalse(rule.requiresXTLS(JID("bob@example.net/r")))
        [plain] = self.load(self.data(False)).httpauth.rules.rules
        self.assertEqual((plain.requireXTLS, plain.xtlsFor), (False, frozenset()))

    def test_badValues(self) -> None:
        """
        Anything but a boolean or an array of JIDs is refused, with the key.
        """
        self.fails(self.data("yes"), "httpauth.rules[0].require_xtls must be an array of strings")
        self.fails(self.data(["@"]), "httpauth.rules[0].require_xtls[0]: '@' is not a bare JID or a domain")

    def test_sharedStoreRefused(self) -> None:
        """
        With a shared store the tunnel could live in another instance than
        the one the user's data reaches: refused at start-up.
        """
        self.fails(
            self.data(True, httpauth={"public_origin": "https://example.net", "store": {"redis": "tcp:host=h:port=1"},
                                      "rules": [{"prefix": "/", "anyone": True, "require_xtls": True}]}),
            "httpauth.rules[0].require_xtls: confirmations through XTLS cannot be shared by several confirmers",
            "remove [httpauth.store] redis",
        )

    def test_xtlsOffRefused(self) -> None:
        """
        The XTLS endpoint turned off, or without a certificate when a
        server is configured: refused, saying what to add.
        """
        self.fails(self.data(True, xtls={"enabled": False}), "httpauth.rules[0].require_xtls",
                   "which is off ([xtls] enabled = false or --no-xtls)")
        self.fails(self.data(["a@example.net"], xtls={}), "httpauth.rules[0].require_xtls",
                   "which has no certificate; add certificate")

    def test_tunnelIdleTimeout(self) -> None:
        """
        C{[httpauth] tunnel_idle_timeout}: 60 s by default, a positive
        number of seconds.
        """
        data = self.data(True)
        self.assertEqual(self.load(data).httpauth.tunnelIdleTimeout, 60.0)
        data["httpauth"]["tunnel_idle_timeout"] = 5
        self.assertEqual(self.load(data).httpauth.tunnelIdleTimeout, 5.0)
        data["httpauth"]["tunnel_idle_timeout"] = 0
        self.fails(data, "httpauth.tunnel_idle_timeout")

    def test_embeddedNeedsNoCertificate(self) -> None:
        """
        On the embedded router the XTLS certificate is made at start-up.
        """
        [rule] = self.load({"httpauth": {"rules": [{"prefix": "/", "anyone": True, "require_xtls": True}]}}
                           ).httpauth.rules.rules
        self.assertTrue(rule.requireXTLS)

    def test_confirmerOff(self) -> None:
        """
        With the confirmer off, the rules are not used: nothing to refuse.
        """
        config = self.load(self.data(True, xtls={"enabled": False}) | {"httpauth": {
            "enabled": False, "rules": [{"prefix": "/", "anyone": True, "require_xtls": True}]}})
        self.assertFalse(config.httpauth.enabled)


class AcceptTLSConfigTests(_ComponentFilesMixin, SynchronousTestCase):
    """
    XEP-0114 and TLS (issue 20): over plain TCP there is no TLS, so an
    explicit C{require_tls = true} and trust files are refused before any
    file is read; over C{tls:} the trust settings are used.
    """

    def component(self, server: str = "tcp:host=127.0.0.1:port=5347", **keys: Any) -> dict[str, Any]:
        with open(self.path("legacy.secret"), "w") as f:
            f.write("s3cret\n")
        table: dict[str, Any] = {
            "server": server,
            "server_domain": "example.net",
            "protocol": "xep0114",
            "hostnames": ["legacy.example.net"],
            "secret": {"file": "legacy.secret"},
        }
        table.update(keys)
        return {"component": table, "httpauth": {"enabled": False}}

    def test_requireTLSDefault(self) -> None:
        """
        Without C{require_tls} (true by default), or with it false, plain
        XEP-0114 loads.
        """
        self.assertTrue(self.load(self.component()).requireTLS)
        self.assertFalse(self.load(self.component(require_tls=False)).requireTLS)

    def test_requireTLSExplicit(self) -> None:
        """
        An explicit C{require_tls = true} over plain TCP is refused, saying
        why and what to do.
        """
        error = self.fails(self.component(require_tls=True))
        self.assertEqual(
            error,
            'c.toml: component.require_tls: protocol = "xep0114" over plain TCP has no TLS to require: the '
            "stream and the handshake's digest of the secret cross the network in clear. Remove require_tls "
            "(or set it to false to say you know), or connect with direct TLS if the server offers it (server = "
            '"tls:host=HOST:port=PORT", checked against [component.trust])',
        )

    def test_trustFilesRefused(self) -> None:
        """
        A CA file or pinned certificate over plain TCP is refused (it would
        check nothing), before its file is looked for; C{system = true}
        (the default) is accepted.
        """
        self.fails(self.component(trust={"pinned": "router.pem"}), "c.toml: component.trust.pinned: ",
                   "checks no certificate", "remove [component.trust]")
        self.fails(self.component(trust={"ca_file": "ca.pem"}), "component.trust.ca_file", "checks no certificate")
        self.assertEqual(self.load(self.component(trust={"system": True})).trust.kind, "system")

    def test_directTLS(self) -> None:
        """
        Over C{tls:}, C{require_tls} and the trust files are taken (and the
        files must exist).
        """
        server = "tls:host=xmpp.example.net:port=5270"
        self.fails(self.component(server, trust={"pinned": "router.pem"}), "component.trust.pinned",
                   "does not exist")
        from xmppcomp.testing import makeCertificateAuthority

        with open(self.path("router.pem"), "wb") as f:
            f.write(makeCertificateAuthority().pem)
        config = self.load(self.component(server, require_tls=True, trust={"pinned": "router.pem"}))
        self.assertEqual(config.trust.pinned, self.path("router.pem"))
        self.assertTrue(config.requireTLS)

    def test_exampleWithXEP0114(self) -> None:
        """
        The example file with C{protocol = "xep0114"} and none of its files:
        the first error is about XEP-0114 and TLS, not a missing file; then
        the trust, then the identity; then the missing secret.
        """
        import tomllib

        example = os.path.join(os.path.dirname(__file__), "..", "docs", "examples", "component.toml")
        with open(example, "rb") as f:
            data = tomllib.load(f)
        data["component"]["protocol"] = "xep0114"
        self.fails(data, "component.require_tls: protocol = \"xep0114\" over plain TCP has no TLS to require")
        del data["component"]["require_tls"]
        self.fails(data, "component.trust.pinned: protocol = \"xep0114\" over plain TCP checks no certificate")
        del data["component"]["trust"]
        self.fails(data, "component.identity: XEP-0114 has no SASL")
        del data["component"]["identity"]
        self.fails(data, "component.secret", "comp.secret")


class RetryDelayConfigTests(_ComponentFilesMixin, SynchronousTestCase):
    """
    C{[component.limits] max_retry_delay} (issue 20).
    """

    def test_maxRetryDelay(self) -> None:
        """
        It is 60 s by default, read from the file, above 0.
        """
        base = {"component": {"hostnames": ["a.localhost"]}, "httpauth": {"enabled": False}}
        self.assertEqual(self.load(base).limits.maxRetryDelay, 60.0)
        base["component"]["limits"] = {"max_retry_delay": 10}
        self.assertEqual(self.load(base).limits.maxRetryDelay, 10.0)
        base["component"]["limits"] = {"max_retry_delay": 0}
        self.fails(base, "component.limits.max_retry_delay", "above 0")
