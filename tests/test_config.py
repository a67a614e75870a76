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
            "holds no PEM certificate",
        )
        self.fails(
            self.minimal(tls={"certificate": "router.pem", "key": "clients-ca.pem"}),
            "tls.key",
            "no usable PEM private key",
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
            "does not match",
        )
        self.fails(
            self.minimal(tls={"certificate": "router.pem", "key": "router.key",
                              "client_cas": "router.key"}),
            "tls.client_cas",
            "holds no PEM certificate",
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
