# -*- test-case-name: tests.test_stream_sasl -*-
"""
Tests for L{xmppcomp.stream.sasl}.
"""

from __future__ import annotations

import base64
import json
import os
import stat

import attrs
from scramp import ScramClient, ScramException, ScramMechanism
from scramp import core as scrampCore
from scramp.utils import ServerError
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.xish import domish
from zope.interface import implementer
from zope.interface.verify import verifyObject

from xmppcomp.errors import NegotiationError, SASLFailure
from xmppcomp.interfaces import ICredentialStore, IInitiatingMechanism
from xmppcomp.ns import NS_SASL, NS_SASL_CB
from xmppcomp.stream.channelbinding import ChannelBindingData
from xmppcomp.stream.sasl import (
    CredentialFileError,
    ExternalInitiator,
    FileCredentialStore,
    MemoryCredentialStore,
    PlainInitiator,
    SASLInitiator,
    SASLReceiver,
    SASLStep,
    ScramInitiator,
    ScramKeys,
    chooseMechanism,
    deriveKeys,
)
from xmppcomp.jids import normalizeDomain
from xmppcomp.stream.sasl._scrampcompat import installTlsExporter
from xmppcomp.stream.sasl.receiving import scrampFailure

DOMAIN = "comp.example.com"
OTHER = "other.example.com"
SECRET = "s3cret-p\u00e4ss"

#: Keys derived once for the whole module (4096 iterations each).
STORE = MemoryCredentialStore()
STORE.add(DOMAIN, SECRET)

SEP = os.urandom(32)
EXPORTER = os.urandom(32)
TLS13 = ChannelBindingData("TLSv1.3", SEP, EXPORTER)
TLS12 = ChannelBindingData("TLSv1.2", SEP, None)

ALL = [
    "EXTERNAL",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
]


@implementer(ICredentialStore)
class BrokenStore:
    """
    A store that cannot answer.
    """

    def scramKeys(self, identity: str, hashName: str) -> object:
        raise OSError("the credential database is down")


def wire(element: domish.Element) -> domish.Element:
    """
    Serialise C{element} and parse it back, as the stream between the two
    ends would.
    """
    parsed: list[domish.Element] = []
    stream = domish.elementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = parsed.append
    stream.DocumentEndEvent = lambda: None
    stream.parse(b"<stream xmlns='jabber:client'>" + element.toXml().encode("utf-8"))
    assert len(parsed) == 1
    return parsed[0]


def sasl(name: str, text: str | None = None, **attributes: str) -> domish.Element:
    """
    A SASL element with raw character data.
    """
    element = domish.Element((NS_SASL, name))
    for key, value in attributes.items():
        element[key] = value
    if text is not None:
        element.addContent(text)
    return element


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def data(element: domish.Element) -> bytes:
    text = "".join(c for c in element.children if isinstance(c, str))
    return b"" if text == "=" else base64.b64decode(text)


def run(initiator: SASLInitiator, receiver: SASLReceiver) -> list[SASLStep]:
    """
    Pass elements between the two ends until the receiver answers success
    or failure; on success let the initiator check it. Returns the steps.
    """
    steps = [receiver.receive(wire(initiator.start()))]
    while steps[-1].reply.name == "challenge":
        response = initiator.receive(wire(steps[-1].reply))
        assert response is not None
        steps.append(receiver.receive(wire(response)))
    if steps[-1].reply.name == "success":
        assert initiator.receive(wire(steps[-1].reply)) is None
    return steps


def condition(step: SASLStep) -> str:
    """
    The condition of a failure reply.
    """
    assert step.reply.name == "failure", step.reply.toXml()
    return SASLFailure.fromElement(step.reply).condition


def receiver(**kw: object) -> SASLReceiver:
    options: dict[str, object] = {"tlsActive": True, "channelBinding": TLS13}
    options.update(kw)
    store = options.pop("store", STORE)
    return SASLReceiver(store, **options)  # type: ignore[arg-type]


def scram(
    name: str,
    binding: tuple[str, bytes] | None = None,
    secret: str = SECRET,
    identity: str = DOMAIN,
    serverSupportsPlus: bool = True,
) -> SASLInitiator:
    return SASLInitiator(
        ScramInitiator(name, identity, secret, binding, serverSupportsPlus)
    )


class ScrampCompatTests(SynchronousTestCase):
    """
    Tests for L{installTlsExporter}.
    """

    def pristine(self) -> type:
        class PristineCbName(scrampCore.CbName):
            SUPPORTED_TYPES = frozenset(
                {"tls-server-end-point", "tls-unique", "tls-unique-for-telnet"}
            )
            UNSUPPORTED_TYPES = frozenset({"tls-exporter"})

        return PristineCbName

    def test_installAcceptsTlsExporter(self) -> None:
        """
        scramp's C{CbName} as released refuses C{tls-exporter}; after
        L{installTlsExporter} it accepts it.
        """
        cbName = self.pristine()
        self.assertRaises(ScramException, cbName, "tls-exporter")
        installTlsExporter(cbName)
        self.assertEqual(str(cbName("tls-exporter")), "tls-exporter")
        self.assertNotIn("tls-exporter", cbName.UNSUPPORTED_TYPES)

    def test_idempotent(self) -> None:
        """
        Installing twice changes nothing more.
        """
        cbName = self.pristine()
        installTlsExporter(cbName)
        supported = cbName.SUPPORTED_TYPES
        installTlsExporter(cbName)
        self.assertIs(cbName.SUPPORTED_TYPES, supported)

    def test_unknownStillRefused(self) -> None:
        """
        Names scramp does not know stay refused.
        """
        self.assertRaises(ScramException, scrampCore.CbName, "tls-bogus")

    def test_installedInScramp(self) -> None:
        """
        Importing the SASL package installs the shim in scramp itself.
        """
        self.assertIn("tls-exporter", scrampCore.CbName.SUPPORTED_TYPES)

    def test_scrampRoundTripWithExporterBytes(self) -> None:
        """
        scramp completes a SCRAM-SHA-256-PLUS exchange with C{tls-exporter}
        bytes, and refuses mismatched bytes.
        """
        salt, storedKey, serverKey, i = ScramMechanism("SCRAM-SHA-256").make_auth_info(
            "pw"
        )

        def authFn(username: str) -> tuple[bytes, bytes, bytes, int]:
            return salt, storedKey, serverKey, i

        for clientBytes, ok in [(EXPORTER, True), (SEP, False)]:
            client = ScramClient(
                ["SCRAM-SHA-256-PLUS"],
                "u",
                "pw",
                channel_binding=("tls-exporter", clientBytes),
            )
            server = ScramMechanism("SCRAM-SHA-256-PLUS").make_server(
                authFn, channel_binding=("tls-exporter", EXPORTER)
            )
            server.set_client_first(client.get_client_first())
            client.set_server_first(server.get_server_first())
            final = client.get_client_final()
            if ok:
                server.set_client_final(final)
                client.set_server_final(server.get_server_final())
                cbind = base64.b64decode(final.split(",")[0][2:])
                self.assertEqual(cbind, b"p=tls-exporter,," + EXPORTER)
            else:
                error = self.assertRaises(
                    ScramException, server.set_client_final, final
                )
                self.assertEqual(
                    error.server_error, ServerError.CHANNEL_BINDINGS_DONT_MATCH
                )


class NormalizeDomainTests(SynchronousTestCase):
    """
    Tests for L{normalizeDomain}.
    """

    def test_valid(self) -> None:
        """
        A domain comes back nameprepped, without a trailing dot.
        """
        self.assertEqual(normalizeDomain("Comp.Example.COM"), DOMAIN)
        self.assertEqual(normalizeDomain("comp.example.com."), DOMAIN)

    def test_invalid(self) -> None:
        """
        Empty names, node or resource parts and bad characters are refused.
        """
        for bad in ["", ".", "a@comp.example.com", "comp.example.com/r", "a b", "a..b"]:
            self.assertRaises(ValueError, normalizeDomain, bad)


class StoreTests(SynchronousTestCase):
    """
    Tests for L{deriveKeys}, L{ScramKeys} and L{MemoryCredentialStore}.
    """

    def test_deriveKeysWithScramp(self) -> None:
        """
        L{deriveKeys} gives what scramp's C{make_auth_info} gives for the
        same salt and count.
        """
        salt = b"0123456789abcdef"
        keys = deriveKeys("pw", "sha-256", salt=salt, iterations=5000)
        expected = ScramMechanism("SCRAM-SHA-256").make_auth_info(
            "pw", iteration_count=5000, salt=salt
        )
        self.assertEqual(keys, ScramKeys(salt, 5000, expected[1], expected[2]))
        self.assertEqual(len(deriveKeys("pw", "sha-1", salt=salt).storedKey), 20)

    def test_deriveKeysRandomSalt(self) -> None:
        """
        Without a salt, each derivation gets a fresh random one.
        """
        a = deriveKeys("pw", "sha-1")
        b = deriveKeys("pw", "sha-1")
        self.assertNotEqual(a.salt, b.salt)
        self.assertGreaterEqual(len(a.salt), 16)
        self.assertEqual(a.iterations, 4096)

    def test_deriveKeysRefuses(self) -> None:
        """
        An unknown hash, too few iterations or a short salt are refused.
        """
        self.assertRaises(ValueError, deriveKeys, "pw", "md5")
        self.assertRaises(ValueError, deriveKeys, "pw", "sha-1", iterations=1000)
        self.assertRaises(ValueError, deriveKeys, "pw", "sha-1", salt=b"short")

    def test_scramKeysFrozenAndValidated(self) -> None:
        """
        L{ScramKeys} is immutable and validated.
        """
        keys = STORE.scramKeys(DOMAIN, "sha-1")
        assert keys is not None
        self.assertRaises(
            attrs.exceptions.FrozenInstanceError, setattr, keys, "iterations", 1
        )
        self.assertRaises(ValueError, ScramKeys, b"x" * 16, 100, b"k", b"k")
        self.assertRaises(ValueError, ScramKeys, b"x", 4096, b"k", b"k")
        self.assertNotIn(repr(keys.storedKey), repr(keys))

    def test_memoryStore(self) -> None:
        """
        L{MemoryCredentialStore.add} keeps SHA-1 and SHA-256 keys (with
        their own salts) under the normalised domain; L{remove} forgets.
        """
        store = MemoryCredentialStore()
        self.assertTrue(verifyObject(ICredentialStore, store))
        store.add("COMP.example.com", "pw")
        self.assertEqual(store.identities(), [DOMAIN])
        sha1 = store.scramKeys(DOMAIN, "sha-1")
        sha256 = store.scramKeys("Comp.Example.Com", "sha-256")
        assert sha1 is not None and sha256 is not None
        self.assertEqual(len(sha1.storedKey), 20)
        self.assertEqual(len(sha256.storedKey), 32)
        self.assertNotEqual(sha1.salt, sha256.salt)
        self.assertEqual(deriveKeys("pw", "sha-256", sha256.salt), sha256)
        self.assertIsNone(store.scramKeys(DOMAIN, "sha-512"))
        self.assertIsNone(store.scramKeys(OTHER, "sha-1"))
        self.assertIsNone(store.scramKeys("not a domain", "sha-1"))
        store.remove(DOMAIN)
        self.assertIsNone(store.scramKeys(DOMAIN, "sha-1"))
        self.assertRaises(KeyError, store.remove, DOMAIN)

    def test_memoryStoreNeverKeepsSecret(self) -> None:
        """
        The secret is nowhere in the store.
        """
        store = MemoryCredentialStore()
        store.add(DOMAIN, "very-distinctive-secret")
        self.assertNotIn("very-distinctive-secret", repr(vars(store)))
        self.assertNotIn(b"very-distinctive-secret", repr(vars(store)).encode())

    def test_memoryStoreRefusesNonDomain(self) -> None:
        """
        Only domains can be added.
        """
        store = MemoryCredentialStore()
        self.assertRaises(ValueError, store.add, "user@example.com", "pw")
        self.assertRaises(ValueError, store.add, DOMAIN, "pw", iterations=10)
        self.assertEqual(store.identities(), [])


class FileStoreTests(SynchronousTestCase):
    """
    Tests for L{FileCredentialStore}.
    """

    def setUp(self) -> None:
        self.directory = self.mktemp()
        os.mkdir(self.directory)
        self.path = os.path.join(self.directory, "credentials.json")

    def write(self, document: object) -> None:
        with open(self.path, "w") as f:
            f.write(document if isinstance(document, str) else json.dumps(document))

    def validEntry(self) -> dict[str, object]:
        keys = STORE.scramKeys(DOMAIN, "sha-1")
        assert keys is not None
        return {
            "salt": b64(keys.salt),
            "iterations": keys.iterations,
            "storedKey": b64(keys.storedKey),
            "serverKey": b64(keys.serverKey),
        }

    def test_roundTrip(self) -> None:
        """
        What L{FileCredentialStore.save} writes, L{load} reads back; the
        file is mode 0600 and follows the documented format.
        """
        store = FileCredentialStore(self.path)
        self.assertTrue(verifyObject(ICredentialStore, store))
        store.load()
        self.assertEqual(store.identities(), [])
        store.add(DOMAIN, "pw")
        store.add(OTHER, "pw2")
        store.save()
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(os.listdir(self.directory), ["credentials.json"])
        with open(self.path) as f:
            document = json.load(f)
        self.assertEqual(document["version"], 1)
        self.assertEqual(sorted(document["identities"]), [DOMAIN, OTHER])
        entry = document["identities"][DOMAIN]["sha-256"]
        self.assertEqual(
            sorted(entry), ["iterations", "salt", "serverKey", "storedKey"]
        )
        self.assertNotIn("pw", json.dumps(document).split('"'))

        again = FileCredentialStore(self.path)
        again.load()
        for hashName in ("sha-1", "sha-256"):
            self.assertEqual(
                again.scramKeys(DOMAIN, hashName), store.scramKeys(DOMAIN, hashName)
            )
        again.remove(OTHER)
        again.save()
        third = FileCredentialStore(self.path)
        third.load()
        self.assertEqual(third.identities(), [DOMAIN])
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)

    def test_fileStoreAuthenticates(self) -> None:
        """
        A receiver backed by a loaded file store authenticates.
        """
        store = FileCredentialStore(self.path)
        store.add(DOMAIN, SECRET)
        store.save()
        loaded = FileCredentialStore(self.path)
        loaded.load()
        steps = run(scram("SCRAM-SHA-1"), receiver(store=loaded))
        self.assertEqual(steps[-1].identity, DOMAIN)

    def test_saveFailureLeavesNoTemporaryFile(self) -> None:
        """
        When the file cannot be replaced, L{save} raises and leaves neither
        a temporary file nor a changed file behind.
        """
        os.mkdir(self.path)
        store = FileCredentialStore(self.path)
        store.add(DOMAIN, "pw")
        self.assertRaises(OSError, store.save)
        self.assertEqual(os.listdir(self.directory), ["credentials.json"])
        self.assertTrue(os.path.isdir(self.path))

    def test_duplicateIdentity(self) -> None:
        """
        Two spellings of one domain are refused.
        """
        entry = {"sha-1": self.validEntry()}
        self.assertMalformed(
            {"version": 1, "identities": {DOMAIN: entry, DOMAIN.upper(): entry}},
            "listed twice",
        )

    def assertMalformed(self, document: object, fragment: str) -> None:
        self.write(document)
        store = FileCredentialStore(self.path)
        store.add(OTHER, "pw")
        error = self.assertRaises(CredentialFileError, store.load)
        self.assertIn(self.path, str(error))
        self.assertIn(fragment, str(error))
        # A failed load changes nothing.
        self.assertEqual(store.identities(), [OTHER])

    def test_notJSON(self) -> None:
        """
        A file that is not JSON is refused with a clear error.
        """
        self.assertMalformed("{not json", "not a JSON document")

    def test_notObject(self) -> None:
        """
        The top level must be an object.
        """
        self.assertMalformed([1, 2], "JSON object")

    def test_wrongVersion(self) -> None:
        """
        Only version 1 is understood.
        """
        self.assertMalformed({"version": 2, "identities": {}}, "version 2")
        self.assertMalformed({"version": True, "identities": {}}, "version")
        self.assertMalformed({"identities": {}}, "version None")

    def test_identitiesNotObject(self) -> None:
        """
        C{identities} must be an object.
        """
        self.assertMalformed({"version": 1, "identities": []}, "'identities'")

    def test_badIdentity(self) -> None:
        """
        Identities must be domains.
        """
        self.assertMalformed(
            {"version": 1, "identities": {"a@b": {"sha-1": self.validEntry()}}},
            "'a@b'",
        )

    def test_badHash(self) -> None:
        """
        Unknown hash names are refused.
        """
        self.assertMalformed(
            {"version": 1, "identities": {DOMAIN: {"md5": self.validEntry()}}},
            "unsupported hash",
        )

    def test_missingField(self) -> None:
        """
        Every field must be present.
        """
        entry = self.validEntry()
        del entry["serverKey"]
        self.assertMalformed(
            {"version": 1, "identities": {DOMAIN: {"sha-1": entry}}}, "serverKey"
        )

    def test_badBase64(self) -> None:
        """
        Keys must be base64.
        """
        entry = self.validEntry()
        entry["storedKey"] = "!!!"
        self.assertMalformed(
            {"version": 1, "identities": {DOMAIN: {"sha-1": entry}}},
            "storedKey is not valid base64",
        )

    def test_wrongKeyLength(self) -> None:
        """
        Keys must have the digest size of their hash.
        """
        self.assertMalformed(
            {"version": 1, "identities": {DOMAIN: {"sha-256": self.validEntry()}}},
            "must be 32 bytes",
        )

    def test_fewIterations(self) -> None:
        """
        Fewer than 4096 iterations are refused.
        """
        entry = self.validEntry()
        entry["iterations"] = 10
        self.assertMalformed(
            {"version": 1, "identities": {DOMAIN: {"sha-1": entry}}}, "iterations"
        )


class MechanismTests(SynchronousTestCase):
    """
    Tests for the initiating mechanisms.
    """

    def test_provideInterface(self) -> None:
        """
        Every initiating mechanism provides L{IInitiatingMechanism}.
        """
        for mechanism in [
            ScramInitiator("SCRAM-SHA-1", DOMAIN, SECRET, None, False),
            ScramInitiator(
                "SCRAM-SHA-256-PLUS", DOMAIN, SECRET, ("tls-exporter", EXPORTER), True
            ),
            PlainInitiator(DOMAIN, SECRET),
            ExternalInitiator(None),
        ]:
            self.assertTrue(verifyObject(IInitiatingMechanism, mechanism))

    def test_gs2Flags(self) -> None:
        """
        C{p=} with -PLUS, C{y} when we could bind but the server offered no
        -PLUS, C{n} without binding or when the server offered -PLUS.
        """
        cases = [
            (
                "SCRAM-SHA-256-PLUS",
                ("tls-exporter", EXPORTER),
                True,
                b"p=tls-exporter,,",
            ),
            (
                "SCRAM-SHA-1-PLUS",
                ("tls-server-end-point", SEP),
                True,
                b"p=tls-server-end-point,,",
            ),
            ("SCRAM-SHA-256", ("tls-exporter", EXPORTER), False, b"y,,"),
            ("SCRAM-SHA-256", ("tls-exporter", EXPORTER), True, b"n,,"),
            ("SCRAM-SHA-1", None, False, b"n,,"),
        ]
        for name, binding, plus, prefix in cases:
            initial = ScramInitiator(
                name, DOMAIN, SECRET, binding, plus
            ).getInitialResponse()
            self.assertTrue(
                initial.startswith(prefix + b"n=" + DOMAIN.encode()), initial
            )

    def test_scramRefuses(self) -> None:
        """
        Unknown names, -PLUS without binding and non-domain identities are
        refused.
        """
        self.assertRaises(
            ValueError, ScramInitiator, "SCRAM-SHA-512", DOMAIN, "pw", None, False
        )
        self.assertRaises(
            ValueError, ScramInitiator, "SCRAM-SHA-1-PLUS", DOMAIN, "pw", None, True
        )
        self.assertRaises(
            ValueError, ScramInitiator, "SCRAM-SHA-1", "me@" + DOMAIN, "pw", None, False
        )

    def test_scramCheckSuccessWithoutSignature(self) -> None:
        """
        C{<success/>} without a server signature, or before the exchange is
        complete, is a L{NegotiationError}.
        """
        mechanism = ScramInitiator("SCRAM-SHA-1", DOMAIN, SECRET, None, False)
        mechanism.getInitialResponse()
        error = self.assertRaises(NegotiationError, mechanism.checkSuccess, b"v=AAAA")
        self.assertIn("before the exchange was complete", str(error))

    def test_scramOutOfOrder(self) -> None:
        """
        A second initial response, or a challenge after the exchange, is a
        L{NegotiationError}; a secret SASLprep refuses is a L{ValueError}.
        """
        mechanism = ScramInitiator("SCRAM-SHA-1", DOMAIN, SECRET, None, False)
        mechanism.getInitialResponse()
        self.assertRaises(NegotiationError, mechanism.getInitialResponse)
        self.assertRaises(
            ValueError, ScramInitiator, "SCRAM-SHA-1", DOMAIN, "bell\u0007", None, False
        )
        initiator = scram("SCRAM-SHA-1")
        r = receiver()
        challenge = r.receive(wire(initiator.start())).reply
        step = r.receive(wire(initiator.receive(wire(challenge))))
        initiator.receive(wire(sasl("challenge", str(step.reply))))
        error = self.assertRaises(
            NegotiationError, initiator.mechanism.getResponse, b"r=x,s=y,i=4096"
        )
        self.assertIn("unexpected challenge", str(error))

    def test_scramBadChallenge(self) -> None:
        """
        A challenge that is not a SCRAM server-first message, or carries a
        server error, is a L{NegotiationError}.
        """
        for challenge in [b"garbage", b"e=invalid-proof", b"\xff"]:
            mechanism = ScramInitiator("SCRAM-SHA-1", DOMAIN, SECRET, None, False)
            mechanism.getInitialResponse()
            self.assertRaises(NegotiationError, mechanism.getResponse, challenge)

    def test_plain(self) -> None:
        """
        PLAIN sends NUL authcid NUL secret and wants no additional data.
        """
        mechanism = PlainInitiator(DOMAIN, "pw")
        self.assertEqual(
            mechanism.getInitialResponse(), b"\0" + DOMAIN.encode() + b"\0pw"
        )
        self.assertEqual(mechanism.getResponse(b""), mechanism.getInitialResponse())
        self.assertRaises(NegotiationError, mechanism.getResponse, b"x")
        mechanism.checkSuccess(None)
        self.assertRaises(NegotiationError, mechanism.checkSuccess, b"x")
        self.assertRaises(ValueError, PlainInitiator, "a@b", "pw")
        self.assertRaises(ValueError, PlainInitiator, DOMAIN, "")

    def test_external(self) -> None:
        """
        EXTERNAL sends the authzid, or nothing.
        """
        self.assertEqual(
            ExternalInitiator(DOMAIN).getInitialResponse(), DOMAIN.encode()
        )
        self.assertEqual(ExternalInitiator(None).getInitialResponse(), b"")
        self.assertEqual(ExternalInitiator(DOMAIN).getResponse(b""), DOMAIN.encode())
        self.assertRaises(NegotiationError, ExternalInitiator(None).getResponse, b"x")
        self.assertRaises(ValueError, ExternalInitiator, "a/b")


class ChooseMechanismTests(SynchronousTestCase):
    """
    Tests for L{chooseMechanism}.
    """

    def choose(self, offered: list[str], **kw: object) -> IInitiatingMechanism:
        options: dict[str, object] = {
            "identity": DOMAIN,
            "secret": SECRET,
            "channelBinding": TLS13,
            "serverCbTypes": None,
            "tlsActive": True,
            "haveClientCertificate": False,
        }
        options.update(kw)
        return chooseMechanism(offered, **options)  # type: ignore[arg-type]

    def test_externalFirst(self) -> None:
        """
        EXTERNAL wins when we have a client certificate, with our identity
        as authzid.
        """
        mechanism = self.choose(ALL, haveClientCertificate=True)
        self.assertIsInstance(mechanism, ExternalInitiator)
        self.assertEqual(mechanism.getInitialResponse(), DOMAIN.encode())

    def test_plusWithExporterOnTLS13(self) -> None:
        """
        Without a certificate, SCRAM-SHA-256-PLUS, with tls-exporter on TLS
        1.3 when the server lists no types.
        """
        mechanism = self.choose(ALL)
        self.assertEqual(mechanism.name, "SCRAM-SHA-256-PLUS")
        self.assertTrue(mechanism.getInitialResponse().startswith(b"p=tls-exporter,,"))

    def test_serverCbTypes(self) -> None:
        """
        The binding type is one the server lists (XEP-0440).
        """
        mechanism = self.choose(ALL, serverCbTypes=["tls-server-end-point"])
        self.assertTrue(
            mechanism.getInitialResponse().startswith(b"p=tls-server-end-point,,")
        )

    def test_tls12AssumesEndPoint(self) -> None:
        """
        On TLS 1.2 without a list, tls-server-end-point is assumed.
        """
        mechanism = self.choose(
            ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1"], channelBinding=TLS12
        )
        self.assertEqual(mechanism.name, "SCRAM-SHA-1-PLUS")
        self.assertTrue(
            mechanism.getInitialResponse().startswith(b"p=tls-server-end-point,,")
        )

    def test_noCommonBindingType(self) -> None:
        """
        With no binding type in common, non-PLUS SCRAM with flag C{n}.
        """
        mechanism = self.choose(ALL, serverCbTypes=["tls-unique"])
        self.assertEqual(mechanism.name, "SCRAM-SHA-256")
        self.assertTrue(mechanism.getInitialResponse().startswith(b"n,,"))

    def test_noPlusOfferedMeansY(self) -> None:
        """
        When we could bind but the server offered no -PLUS, flag C{y}.
        """
        mechanism = self.choose(["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"])
        self.assertEqual(mechanism.name, "SCRAM-SHA-256")
        self.assertTrue(mechanism.getInitialResponse().startswith(b"y,,"))

    def test_noBindingMeansN(self) -> None:
        """
        Without TLS binding data, flag C{n}.
        """
        mechanism = self.choose(["SCRAM-SHA-1"], channelBinding=None, tlsActive=False)
        self.assertEqual(mechanism.name, "SCRAM-SHA-1")
        self.assertTrue(mechanism.getInitialResponse().startswith(b"n,,"))

    def test_noPlusOfferedNoCommonTypeMeansY(self) -> None:
        """
        When the server offered no -PLUS, C{y} even if its channel-binding
        list has nothing in common with ours.
        """
        mechanism = self.choose(["SCRAM-SHA-1"], serverCbTypes=[])
        self.assertTrue(mechanism.getInitialResponse().startswith(b"y,,"))

    def test_plainOnlyInTLS(self) -> None:
        """
        PLAIN is chosen inside TLS, never without.
        """
        self.assertIsInstance(self.choose(["PLAIN"]), PlainInitiator)
        error = self.assertRaises(
            NegotiationError,
            self.choose,
            ["PLAIN"],
            tlsActive=False,
            channelBinding=None,
        )
        self.assertIn("['PLAIN']", str(error))
        self.assertIn("refused without TLS", str(error))

    def test_allowed(self) -> None:
        """
        C{allowed} limits the choice.
        """
        mechanism = self.choose(ALL, allowed=["SCRAM-SHA-1"])
        self.assertEqual(mechanism.name, "SCRAM-SHA-1")
        self.assertTrue(mechanism.getInitialResponse().startswith(b"n,,"))

    def test_nothingFits(self) -> None:
        """
        A clear L{NegotiationError} names what was offered.
        """
        error = self.assertRaises(
            NegotiationError, self.choose, ["DIGEST-MD5", "X-OAUTH2"]
        )
        self.assertIn("DIGEST-MD5", str(error))
        self.assertIn("X-OAUTH2", str(error))
        error = self.assertRaises(
            NegotiationError, self.choose, ["EXTERNAL", "SCRAM-SHA-1"], secret=None
        )
        self.assertIn("EXTERNAL: no client certificate", str(error))
        self.assertIn("SCRAM-SHA-1: no identity and secret", str(error))


class InitiatorTests(SynchronousTestCase):
    """
    Tests for L{SASLInitiator} on its own.
    """

    def test_start(self) -> None:
        """
        L{SASLInitiator.start} makes C{<auth/>} with the mechanism and the
        base64 initial response, C{=} when it is empty.
        """
        auth = SASLInitiator(PlainInitiator(DOMAIN, "pw")).start()
        self.assertEqual(
            (auth.uri, auth.name, auth["mechanism"]), (NS_SASL, "auth", "PLAIN")
        )
        self.assertEqual(str(auth), b64(b"\0" + DOMAIN.encode() + b"\0pw"))
        auth = SASLInitiator(ExternalInitiator(None)).start()
        self.assertEqual(str(auth), "=")
        initiator = SASLInitiator(ExternalInitiator(None))
        initiator.start()
        self.assertRaises(NegotiationError, initiator.start)

    def test_failure(self) -> None:
        """
        C{<failure/>} raises L{SASLFailure} with its condition and text.
        """
        initiator = SASLInitiator(PlainInitiator(DOMAIN, "pw"))
        initiator.start()
        failure = SASLFailure("not-authorized", "nope").toElement()
        error = self.assertRaises(SASLFailure, initiator.receive, wire(failure))
        self.assertEqual((error.condition, error.text), ("not-authorized", "nope"))
        self.assertFalse(initiator.done)

    def test_badBase64(self) -> None:
        """
        Invalid base64 from the server is a L{NegotiationError}.
        """
        initiator = scram("SCRAM-SHA-1")
        initiator.start()
        self.assertRaises(NegotiationError, initiator.receive, sasl("challenge", "@@@"))

    def test_unexpectedElement(self) -> None:
        """
        Elements other than challenge, success and failure are a
        L{NegotiationError}, as is anything before start or after success.
        """
        initiator = SASLInitiator(ExternalInitiator(None))
        self.assertRaises(NegotiationError, initiator.receive, sasl("success"))
        initiator.start()
        self.assertRaises(NegotiationError, initiator.receive, sasl("auth"))
        other = SASLInitiator(ExternalInitiator(None))
        other.start()
        self.assertRaises(
            NegotiationError,
            other.receive,
            domish.Element(("http://etherx.jabber.org/streams", "features")),
        )
        done = SASLInitiator(ExternalInitiator(None))
        done.start()
        self.assertIsNone(done.receive(sasl("success")))
        self.assertTrue(done.done)
        self.assertRaises(NegotiationError, done.receive, sasl("success"))

    def test_abort(self) -> None:
        """
        L{SASLInitiator.abort} makes C{<abort/>}; the answering failure is
        raised as L{SASLFailure}.
        """
        initiator = scram("SCRAM-SHA-1")
        r = receiver()
        r.receive(wire(initiator.start()))
        abort = initiator.abort()
        self.assertEqual((abort.uri, abort.name), (NS_SASL, "abort"))
        step = r.receive(wire(abort))
        error = self.assertRaises(SASLFailure, initiator.receive, wire(step.reply))
        self.assertEqual(error.condition, "aborted")

    def test_successWithoutSignature(self) -> None:
        """
        A SCRAM C{<success/>} without C{v=} fails mutual authentication.
        """
        initiator = scram("SCRAM-SHA-256")
        r = receiver()
        challenge = r.receive(wire(initiator.start())).reply
        r.receive(wire(initiator.receive(wire(challenge))))
        error = self.assertRaises(NegotiationError, initiator.receive, sasl("success"))
        self.assertIn("no signature", str(error))
        self.assertFalse(initiator.done)

    def test_serverSignatureTampered(self) -> None:
        """
        A server signature that does not verify is detected by the client.
        """
        initiator = scram("SCRAM-SHA-256")
        r = receiver()
        challenge = r.receive(wire(initiator.start())).reply
        step = r.receive(wire(initiator.receive(wire(challenge))))
        self.assertEqual(step.identity, DOMAIN)
        signature = data(step.reply)
        self.assertTrue(signature.startswith(b"v="))
        raw = bytearray(base64.b64decode(signature[2:]))
        raw[0] ^= 1
        forged = b"v=" + base64.b64encode(bytes(raw))
        error = self.assertRaises(
            NegotiationError, initiator.receive, sasl("success", b64(forged))
        )
        self.assertIn("signature", str(error))
        self.assertFalse(initiator.done)

    def test_signatureInFinalChallenge(self) -> None:
        """
        A server that sends C{v=} as a final challenge (RFC 6120 section
        6.3.10) gets an empty response, then an empty success is accepted.
        """
        initiator = scram("SCRAM-SHA-1")
        r = receiver()
        challenge = r.receive(wire(initiator.start())).reply
        step = r.receive(wire(initiator.receive(wire(challenge))))
        final = sasl("challenge", str(step.reply))
        response = initiator.receive(wire(final))
        assert response is not None
        self.assertEqual(str(response), "=")
        self.assertIsNone(initiator.receive(sasl("success")))
        self.assertTrue(initiator.done)


class OfferTests(SynchronousTestCase):
    """
    Tests for what L{SASLReceiver} offers.
    """

    def test_everything(self) -> None:
        """
        With TLS, channel binding and a verified certificate, everything is
        offered, strongest first.
        """
        self.assertEqual(
            receiver(peerIdentities=frozenset([DOMAIN])).offeredMechanisms(), ALL
        )

    def test_plaintext(self) -> None:
        """
        Without TLS: no PLAIN, no -PLUS, no EXTERNAL.
        """
        r = receiver(tlsActive=False, channelBinding=None)
        self.assertEqual(r.offeredMechanisms(), ["SCRAM-SHA-256", "SCRAM-SHA-1"])

    def test_policies(self) -> None:
        """
        C{allowPlain}, C{requireChannelBinding} and C{mechanisms} narrow
        the offer.
        """
        self.assertNotIn("PLAIN", receiver(allowPlain=False).offeredMechanisms())
        self.assertEqual(
            receiver(requireChannelBinding=True).offeredMechanisms(),
            ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"],
        )
        self.assertEqual(
            receiver(mechanisms=["SCRAM-SHA-1", "PLAIN"]).offeredMechanisms(),
            ["SCRAM-SHA-1", "PLAIN"],
        )
        self.assertRaises(ValueError, receiver, mechanisms=["DIGEST-MD5"])
        self.assertRaises(ValueError, receiver, maxAttempts=0)
        self.assertRaises(
            TypeError, SASLReceiver, object(), tlsActive=True, channelBinding=None
        )

    def test_featureElements(self) -> None:
        """
        The features are C{<mechanisms/>} with C{<required/>} and the
        XEP-0440 channel-binding types.
        """
        mechanisms, cb = receiver().featureElements()
        self.assertEqual((mechanisms.uri, mechanisms.name), (NS_SASL, "mechanisms"))
        self.assertEqual(
            [str(e) for e in mechanisms.elements(NS_SASL, "mechanism")],
            [
                "SCRAM-SHA-256-PLUS",
                "SCRAM-SHA-1-PLUS",
                "SCRAM-SHA-256",
                "SCRAM-SHA-1",
                "PLAIN",
            ],
        )
        self.assertEqual(len(list(mechanisms.elements(NS_SASL, "required"))), 1)
        self.assertEqual((cb.uri, cb.name), (NS_SASL_CB, "sasl-channel-binding"))
        self.assertEqual(
            [e["type"] for e in cb.elements(NS_SASL_CB, "channel-binding")],
            ["tls-exporter", "tls-server-end-point"],
        )

    def test_featureElementsWithoutBinding(self) -> None:
        """
        Without channel binding there is no XEP-0440 element.
        """
        features = receiver(channelBinding=None).featureElements()
        self.assertEqual([f.name for f in features], ["mechanisms"])


class RoundTripTests(SynchronousTestCase):
    """
    Every mechanism end to end, L{SASLInitiator} against L{SASLReceiver}.
    """

    def assertSucceeds(self, initiator: SASLInitiator, r: SASLReceiver) -> SASLStep:
        steps = run(initiator, r)
        last = steps[-1]
        self.assertEqual(last.reply.name, "success")
        self.assertEqual(last.identity, DOMAIN)
        self.assertFalse(last.tooManyFailures)
        self.assertTrue(initiator.done)
        self.assertTrue(all(s.identity is None for s in steps[:-1]))
        return last

    def test_scramSha1(self) -> None:
        """
        SCRAM-SHA-1 without TLS, with the server signature as additional
        data with success.
        """
        last = self.assertSucceeds(
            scram("SCRAM-SHA-1"), receiver(tlsActive=False, channelBinding=None)
        )
        self.assertTrue(data(last.reply).startswith(b"v="))

    def test_scramSha256(self) -> None:
        """
        SCRAM-SHA-256.
        """
        self.assertSucceeds(
            scram("SCRAM-SHA-256", serverSupportsPlus=False),
            receiver(channelBinding=None),
        )

    def test_scramNonPlusWhilePlusOffered(self) -> None:
        """
        A client without binding (flag C{n}) may use non-PLUS SCRAM while
        -PLUS is offered.
        """
        self.assertSucceeds(scram("SCRAM-SHA-256"), receiver())

    def test_scramPlusEndPoint(self) -> None:
        """
        Both -PLUS mechanisms with tls-server-end-point.
        """
        for name in ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"]:
            self.assertSucceeds(
                scram(name, ("tls-server-end-point", SEP)),
                receiver(channelBinding=TLS12),
            )

    def test_scramPlusExporter(self) -> None:
        """
        Both -PLUS mechanisms with tls-exporter.
        """
        for name in ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"]:
            self.assertSucceeds(scram(name, ("tls-exporter", EXPORTER)), receiver())

    def test_chosenMechanism(self) -> None:
        """
        What L{chooseMechanism} picks from the receiver's features works.
        """
        r = receiver()
        mechanismsElement, cbElement = r.featureElements()
        mechanism = chooseMechanism(
            [str(e) for e in mechanismsElement.elements(NS_SASL, "mechanism")],
            identity=DOMAIN,
            secret=SECRET,
            channelBinding=TLS13,
            serverCbTypes=[
                e["type"] for e in cbElement.elements(NS_SASL_CB, "channel-binding")
            ],
            tlsActive=True,
            haveClientCertificate=False,
        )
        self.assertEqual(mechanism.name, "SCRAM-SHA-256-PLUS")
        self.assertSucceeds(SASLInitiator(mechanism), r)

    def test_plain(self) -> None:
        """
        PLAIN inside TLS, checked against the stored SCRAM keys.
        """
        last = self.assertSucceeds(
            SASLInitiator(PlainInitiator(DOMAIN, SECRET)), receiver()
        )
        self.assertEqual(last.reply.children, [])

    def test_plainWithAuthzid(self) -> None:
        """
        A PLAIN authzid equal to the authcid is accepted.
        """
        r = receiver()
        message = f"{DOMAIN}\0{DOMAIN.upper()}\0{SECRET}".encode()
        step = r.receive(sasl("auth", b64(message), mechanism="PLAIN"))
        self.assertEqual(step.identity, DOMAIN)

    def test_plainSha1Only(self) -> None:
        """
        PLAIN works with an identity that has only SHA-1 keys.
        """
        store = MemoryCredentialStore()
        keys = STORE.scramKeys(DOMAIN, "sha-1")
        assert keys is not None
        store.setKeys(DOMAIN, "sha-1", keys)
        self.assertSucceeds(
            SASLInitiator(PlainInitiator(DOMAIN, SECRET)), receiver(store=store)
        )

    def test_external(self) -> None:
        """
        EXTERNAL with an empty authzid and one certificate identity.
        """
        last = self.assertSucceeds(
            SASLInitiator(ExternalInitiator(None)),
            receiver(peerIdentities=frozenset([DOMAIN])),
        )
        self.assertEqual(last.reply.children, [])

    def test_externalWithAuthzid(self) -> None:
        """
        EXTERNAL with an authzid among several certificate identities.
        """
        self.assertSucceeds(
            SASLInitiator(ExternalInitiator(DOMAIN)),
            receiver(peerIdentities=frozenset([OTHER, "Comp.Example.Com"])),
        )

    def test_noInitialResponse(self) -> None:
        """
        C{<auth/>} without an initial response gets an empty challenge; the
        initial response then comes as a C{<response/>} (RFC 6120 section
        6.4.2).
        """
        mechanism = ScramInitiator("SCRAM-SHA-1", DOMAIN, SECRET, None, True)
        r = receiver()
        step = r.receive(sasl("auth", mechanism="SCRAM-SHA-1"))
        self.assertEqual((step.reply.name, str(step.reply)), ("challenge", "="))
        first = mechanism.getInitialResponse()
        step = r.receive(sasl("response", b64(first)))
        self.assertEqual(step.reply.name, "challenge")
        final = mechanism.getResponse(data(step.reply))
        step = r.receive(sasl("response", b64(final)))
        mechanism.checkSuccess(data(step.reply))
        self.assertEqual(step.identity, DOMAIN)

    def test_externalNoInitialResponse(self) -> None:
        """
        EXTERNAL without an initial response: empty challenge, then an
        empty response.
        """
        r = receiver(peerIdentities=frozenset([DOMAIN]))
        step = r.receive(sasl("auth", mechanism="EXTERNAL"))
        self.assertEqual(step.reply.name, "challenge")
        response = ExternalInitiator(None).getResponse(data(step.reply))
        step = r.receive(sasl("response", "="))
        self.assertEqual(response, b"")
        self.assertEqual(step.identity, DOMAIN)

    def test_authRestarts(self) -> None:
        """
        An C{<auth/>} while an exchange is in progress starts over, and is
        not a failure.
        """
        r = receiver()
        step = r.receive(wire(scram("SCRAM-SHA-1").start()))
        self.assertEqual(step.reply.name, "challenge")
        self.assertSucceeds(SASLInitiator(PlainInitiator(DOMAIN, SECRET)), r)
        self.assertEqual(r.failures, 0)

    def test_retryAfterFailure(self) -> None:
        """
        After a failure the initiator may try again.
        """
        r = receiver()
        self.assertEqual(
            condition(run(scram("SCRAM-SHA-1", secret="wrong"), r)[-1]),
            "not-authorized",
        )
        self.assertSucceeds(scram("SCRAM-SHA-1"), r)


class FailureTests(SynchronousTestCase):
    """
    The failure conditions of L{SASLReceiver}.
    """

    def assertFailure(self, step: SASLStep, expected: str) -> None:
        self.assertEqual(condition(step), expected)
        self.assertIsNone(step.identity)

    def test_unknownMechanism(self) -> None:
        """
        An unknown mechanism is C{invalid-mechanism}; so is a missing name.
        """
        r = receiver()
        self.assertFailure(
            r.receive(sasl("auth", "=", mechanism="DIGEST-MD5")), "invalid-mechanism"
        )
        self.assertFailure(r.receive(sasl("auth", "=")), "invalid-mechanism")

    def test_mechanismNotOffered(self) -> None:
        """
        A known mechanism not offered on this stream is C{invalid-mechanism}.
        """
        r = receiver(channelBinding=None)
        self.assertFailure(
            r.receive(
                wire(scram("SCRAM-SHA-1-PLUS", ("tls-exporter", EXPORTER)).start())
            ),
            "invalid-mechanism",
        )
        self.assertFailure(
            r.receive(wire(SASLInitiator(ExternalInitiator(None)).start())),
            "invalid-mechanism",
        )
        r = receiver(mechanisms=["SCRAM-SHA-256"])
        self.assertFailure(
            r.receive(wire(scram("SCRAM-SHA-1").start())), "invalid-mechanism"
        )

    def test_plainTooWeak(self) -> None:
        """
        PLAIN when policy forbids it is C{mechanism-too-weak}.
        """
        for r in [receiver(allowPlain=False), receiver(requireChannelBinding=True)]:
            self.assertFailure(
                r.receive(wire(SASLInitiator(PlainInitiator(DOMAIN, SECRET)).start())),
                "mechanism-too-weak",
            )

    def test_scramWithoutBindingTooWeak(self) -> None:
        """
        Non-PLUS SCRAM when channel binding is required is
        C{mechanism-too-weak}.
        """
        r = receiver(requireChannelBinding=True)
        self.assertFailure(
            r.receive(wire(scram("SCRAM-SHA-256").start())), "mechanism-too-weak"
        )

    def test_plainWithoutTLS(self) -> None:
        """
        PLAIN without TLS is C{encryption-required}.
        """
        r = receiver(tlsActive=False, channelBinding=None)
        self.assertFailure(
            r.receive(wire(SASLInitiator(PlainInitiator(DOMAIN, SECRET)).start())),
            "encryption-required",
        )

    def test_badBase64(self) -> None:
        """
        Invalid base64 is C{incorrect-encoding}, in C{<auth/>} and in
        C{<response/>}.
        """
        r = receiver()
        self.assertFailure(
            r.receive(sasl("auth", "not base64!", mechanism="PLAIN")),
            "incorrect-encoding",
        )
        self.assertFailure(
            r.receive(sasl("auth", "abc", mechanism="PLAIN")), "incorrect-encoding"
        )
        r.receive(wire(scram("SCRAM-SHA-1").start()))
        self.assertFailure(r.receive(sasl("response", "%%%")), "incorrect-encoding")

    def test_malformedScram(self) -> None:
        """
        SCRAM messages that violate the syntax are C{malformed-request}.
        """
        for message in [
            b"hello",
            b"n,,garbage",
            b"x,,n=comp.example.com,r=abc",
            b"n,,n=comp.example.com,r=abc,m=ext",
            b"n,,n=comp=XXexample.com,r=abc",
            b"\xff\xfe",
        ]:
            r = receiver()
            self.assertFailure(
                r.receive(sasl("auth", b64(message), mechanism="SCRAM-SHA-1")),
                "malformed-request",
            )

    def test_malformedClientFinal(self) -> None:
        """
        A client-final message that is not SCRAM is C{malformed-request}.
        """
        r = receiver()
        r.receive(wire(scram("SCRAM-SHA-1").start()))
        self.assertFailure(
            r.receive(sasl("response", b64(b"what"))), "malformed-request"
        )

    def test_emptyInitialResponse(self) -> None:
        """
        An empty initial response (C{=}) for SCRAM or PLAIN, which need
        data, is C{malformed-request}.
        """
        r = receiver()
        self.assertFailure(
            r.receive(sasl("auth", "=", mechanism="SCRAM-SHA-1")), "malformed-request"
        )
        self.assertFailure(
            r.receive(sasl("auth", "=", mechanism="PLAIN")), "malformed-request"
        )

    def test_responseWithoutAuth(self) -> None:
        """
        A C{<response/>} with no exchange in progress is
        C{malformed-request}; so is an unknown SASL element.
        """
        r = receiver()
        self.assertFailure(r.receive(sasl("response", "=")), "malformed-request")
        self.assertFailure(r.receive(sasl("success")), "malformed-request")
        self.assertFailure(
            r.receive(domish.Element(("jabber:client", "message"))), "malformed-request"
        )

    def test_flagMismatch(self) -> None:
        """
        C{p=} with a non-PLUS mechanism, and C{n} with a -PLUS one, are
        C{malformed-request}.
        """
        r = receiver()
        first = ScramInitiator(
            "SCRAM-SHA-1-PLUS", DOMAIN, SECRET, ("tls-exporter", EXPORTER), True
        ).getInitialResponse()
        self.assertFailure(
            r.receive(sasl("auth", b64(first), mechanism="SCRAM-SHA-1")),
            "malformed-request",
        )
        first = ScramInitiator(
            "SCRAM-SHA-1", DOMAIN, SECRET, None, True
        ).getInitialResponse()
        self.assertFailure(
            r.receive(sasl("auth", b64(first), mechanism="SCRAM-SHA-1-PLUS")),
            "malformed-request",
        )

    def test_malformedPlain(self) -> None:
        """
        PLAIN messages without two NULs, or with an empty authcid or
        password, are C{malformed-request}.
        """
        for message in [
            b"comp.example.com\0pw",
            b"\0\0pw",
            b"\0comp.example.com\0",
            b"a\0b\0c\0d",
        ]:
            self.assertFailure(
                receiver().receive(sasl("auth", b64(message), mechanism="PLAIN")),
                "malformed-request",
            )

    def test_plainInvalidAuthzid(self) -> None:
        """
        A PLAIN authzid that is not the authcid, or not a domain, is
        C{invalid-authzid}.
        """
        for authzid in [OTHER, "user@" + DOMAIN]:
            message = f"{authzid}\0{DOMAIN}\0{SECRET}".encode()
            self.assertFailure(
                receiver().receive(sasl("auth", b64(message), mechanism="PLAIN")),
                "invalid-authzid",
            )

    def test_scramAuthzid(self) -> None:
        """
        A SCRAM authzid is C{invalid-authzid}: not a domain, not the user
        name, or the user name (which scramp cannot carry); a bad escape in
        it is C{malformed-request}.
        """
        for authzid, text in [
            ("a=user@x", "must be a domain"),
            ("a=" + OTHER, "must equal the user name"),
            ("a=" + DOMAIN, "not supported with SCRAM"),
        ]:
            message = f"n,{authzid},n={DOMAIN},r=abcdef".encode()
            step = receiver().receive(
                sasl("auth", b64(message), mechanism="SCRAM-SHA-1")
            )
            self.assertFailure(step, "invalid-authzid")
            self.assertIn(text, SASLFailure.fromElement(step.reply).text)
        message = f"n,a=comp=XXexample.com,n={DOMAIN},r=abcdef".encode()
        step = receiver().receive(sasl("auth", b64(message), mechanism="SCRAM-SHA-1"))
        self.assertFailure(step, "malformed-request")

    def test_externalInvalidAuthzid(self) -> None:
        """
        An EXTERNAL authzid not in the certificate, or not a domain, is
        C{invalid-authzid}.
        """
        for authzid in [OTHER, "a@" + DOMAIN]:
            r = receiver(peerIdentities=frozenset([DOMAIN]))
            self.assertFailure(
                r.receive(sasl("auth", b64(authzid.encode()), mechanism="EXTERNAL")),
                "invalid-authzid",
            )

    def test_externalIgnoresNonDomainNames(self) -> None:
        """
        Certificate names that are not domains are left out of the
        identities EXTERNAL can use.
        """
        r = receiver(peerIdentities=frozenset([DOMAIN, "*.example.com"]))
        self.assertEqual(
            r.receive(sasl("auth", "=", mechanism="EXTERNAL")).identity, DOMAIN
        )
        r = receiver(peerIdentities=frozenset(["*.example.com"]))
        self.assertNotIn("EXTERNAL", r.offeredMechanisms())

    def test_externalAmbiguous(self) -> None:
        """
        EXTERNAL without authzid and several certificate identities is
        C{not-authorized}.
        """
        r = receiver(peerIdentities=frozenset([DOMAIN, OTHER]))
        self.assertFailure(
            r.receive(sasl("auth", "=", mechanism="EXTERNAL")), "not-authorized"
        )

    def test_wrongSecret(self) -> None:
        """
        A wrong secret is C{not-authorized}, with SCRAM and PLAIN.
        """
        for name in ["SCRAM-SHA-1", "SCRAM-SHA-256"]:
            initiator = scram(name, secret="wrong")
            self.assertFailure(run(initiator, receiver())[-1], "not-authorized")
        self.assertFailure(
            run(SASLInitiator(PlainInitiator(DOMAIN, "wrong")), receiver())[-1],
            "not-authorized",
        )

    def test_unknownIdentityIndistinguishable(self) -> None:
        """
        An unknown identity gets a challenge like a known one (a stable
        salt and the same iteration count), and then the same failure as a
        wrong secret.
        """
        known = run(scram("SCRAM-SHA-1", secret="wrong"), receiver())
        unknown = run(scram("SCRAM-SHA-1", identity=OTHER), receiver())
        again = run(scram("SCRAM-SHA-1", identity=OTHER), receiver())
        self.assertEqual([s.reply.name for s in unknown], [s.reply.name for s in known])
        self.assertEqual(unknown[-1].reply.toXml(), known[-1].reply.toXml())

        def fields(step: SASLStep) -> dict[str, str]:
            return dict(p.split("=", 1) for p in data(step.reply).decode().split(","))

        self.assertEqual(fields(unknown[0])["i"], fields(known[0])["i"])
        self.assertEqual(
            len(base64.b64decode(fields(unknown[0])["s"])),
            len(base64.b64decode(fields(known[0])["s"])),
        )
        self.assertEqual(fields(unknown[0])["s"], fields(again[0])["s"])
        plainUnknown = run(SASLInitiator(PlainInitiator(OTHER, SECRET)), receiver())[-1]
        self.assertEqual(plainUnknown.reply.toXml(), known[-1].reply.toXml())

    def test_mismatchedBinding(self) -> None:
        """
        Client binding bytes that differ from the server's are
        C{not-authorized}.
        """
        for cbType in ["tls-exporter", "tls-server-end-point"]:
            initiator = scram("SCRAM-SHA-256-PLUS", (cbType, os.urandom(32)))
            self.assertFailure(run(initiator, receiver())[-1], "not-authorized")

    def test_unavailableBindingType(self) -> None:
        """
        A binding type the session cannot provide is C{not-authorized},
        with text naming it.
        """
        initiator = scram("SCRAM-SHA-256-PLUS", ("tls-exporter", EXPORTER))
        step = receiver(channelBinding=TLS12).receive(wire(initiator.start()))
        self.assertFailure(step, "not-authorized")
        self.assertIn("tls-exporter", SASLFailure.fromElement(step.reply).text)

    def test_downgrade(self) -> None:
        """
        Flag C{y} while -PLUS was offered is C{not-authorized}; it is fine
        when no -PLUS was offered.
        """
        initiator = scram(
            "SCRAM-SHA-256", ("tls-exporter", EXPORTER), serverSupportsPlus=False
        )
        step = receiver().receive(wire(initiator.start()))
        self.assertFailure(step, "not-authorized")
        self.assertIn("downgrade", SASLFailure.fromElement(step.reply).text)
        initiator = scram(
            "SCRAM-SHA-256", ("tls-exporter", EXPORTER), serverSupportsPlus=False
        )
        self.assertEqual(
            run(initiator, receiver(channelBinding=None))[-1].identity, DOMAIN
        )

    def test_abort(self) -> None:
        """
        C{<abort/>} is answered with C{aborted} and does not count as a
        failure; the exchange is over.
        """
        r = receiver(maxAttempts=1)
        r.receive(wire(scram("SCRAM-SHA-1").start()))
        step = r.receive(sasl("abort"))
        self.assertFailure(step, "aborted")
        self.assertFalse(step.tooManyFailures)
        self.assertEqual(r.failures, 0)
        self.assertFailure(r.receive(sasl("response", "=")), "malformed-request")

    def test_storeError(self) -> None:
        """
        A store that raises is C{temporary-auth-failure}, with SCRAM and
        PLAIN.
        """
        r = receiver(store=BrokenStore(), maxAttempts=5)
        self.assertFailure(
            r.receive(wire(scram("SCRAM-SHA-1").start())), "temporary-auth-failure"
        )
        self.assertFailure(
            r.receive(wire(SASLInitiator(PlainInitiator(DOMAIN, SECRET)).start())),
            "temporary-auth-failure",
        )

    def test_storeAnswersGarbage(self) -> None:
        """
        A store that returns something other than L{ScramKeys} is
        C{temporary-auth-failure}.
        """

        @implementer(ICredentialStore)
        class GarbageStore:
            def scramKeys(self, identity: str, hashName: str) -> object:
                return ("salt", 1)

        r = receiver(store=GarbageStore(), maxAttempts=5)
        self.assertFailure(
            r.receive(wire(scram("SCRAM-SHA-1").start())), "temporary-auth-failure"
        )
        self.assertFailure(
            r.receive(wire(SASLInitiator(PlainInitiator(DOMAIN, SECRET)).start())),
            "temporary-auth-failure",
        )

    def test_tooManyFailures(self) -> None:
        """
        The C{maxAttempts}-th failure says C{tooManyFailures}; aborts and
        restarts do not count.
        """
        r = receiver(maxAttempts=3)
        first = run(scram("SCRAM-SHA-1", secret="wrong"), r)[-1]
        r.receive(wire(scram("SCRAM-SHA-1").start()))
        r.receive(sasl("abort"))
        second = r.receive(sasl("auth", "=", mechanism="BOGUS"))
        third = run(SASLInitiator(PlainInitiator(DOMAIN, "wrong")), r)[-1]
        self.assertEqual(
            [s.tooManyFailures for s in (first, second, third)], [False, False, True]
        )
        self.assertEqual(r.failures, 3)
        self.assertTrue(r.receive(sasl("response", "=")).tooManyFailures)

    def test_afterSuccess(self) -> None:
        """
        Anything after success is C{malformed-request}.
        """
        r = receiver()
        run(scram("SCRAM-SHA-1"), r)
        self.assertFailure(
            r.receive(wire(scram("SCRAM-SHA-1").start())), "malformed-request"
        )

    def test_stepFrozen(self) -> None:
        """
        L{SASLStep} is an immutable value.
        """
        step = receiver().receive(sasl("abort"))
        self.assertRaises(
            attrs.exceptions.FrozenInstanceError, setattr, step, "identity", DOMAIN
        )


class ScrampFailureTests(SynchronousTestCase):
    """
    Tests for L{scrampFailure}.
    """

    def test_mapping(self) -> None:
        """
        scramp's server errors become RFC 6120 conditions.
        """
        expected = {
            ServerError.INVALID_ENCODING: "malformed-request",
            ServerError.EXTENSIONS_NOT_SUPPORTED: "malformed-request",
            ServerError.INVALID_USERNAME_ENCODING: "malformed-request",
            ServerError.OTHER_ERROR: "malformed-request",
            ServerError.INVALID_PROOF: "not-authorized",
            ServerError.UNKNOWN_USER: "not-authorized",
            ServerError.CHANNEL_BINDINGS_DONT_MATCH: "not-authorized",
            ServerError.SERVER_DOES_SUPPORT_CHANNEL_BINDING: "not-authorized",
            ServerError.CHANNEL_BINDING_NOT_SUPPORTED: "not-authorized",
            ServerError.UNSUPPORTED_CHANNEL_BINDING_TYPE: "not-authorized",
            ServerError.NO_RESOURCES: "temporary-auth-failure",
        }
        self.assertEqual(set(expected), set(ServerError))
        for error, conditionName in expected.items():
            self.assertEqual(
                scrampFailure(ScramException("x", error)).condition, conditionName
            )
        self.assertEqual(
            scrampFailure(ScramException("x")).condition, "malformed-request"
        )

    def test_proofAndUserHidden(self) -> None:
        """
        A wrong proof and an unknown user fail alike, without text.
        """
        a = scrampFailure(ScramException("keys differ", ServerError.INVALID_PROOF))
        b = scrampFailure(ScramException("no such user", ServerError.UNKNOWN_USER))
        self.assertEqual(a.toElement().toXml(), b.toElement().toXml())
        self.assertIsNone(a.text)
