# -*- test-case-name: tests.test_router_e2e -*-
"""
The files and configuration of a router on loopback, for the tests that
start a real L{RouterService<xmppcomp.router.service.RouterService>}.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from twisted.internet.ssl import PrivateCertificate

from xmppcomp.config import RouterConfig
from xmppcomp.stream.sasl import FileCredentialStore
from xmppcomp.testing import writePem


def routerConfig(
    directory: str,
    domain: str,
    certificate: PrivateCertificate,
    secrets: Mapping[str, str],
    **options: Any,
) -> RouterConfig:
    """
    Write C{certificate} (and its key) and a credentials file holding the
    SCRAM keys of C{secrets} (identity to secret) in C{directory}, and
    return the L{RouterConfig} of a router for C{domain} using them,
    listening for XEP-0225 on an ephemeral loopback port, with C{options}
    for the rest.
    """
    certPath, keyPath = writePem(certificate, directory)
    credentials = os.path.join(directory, "credentials.json")
    store = FileCredentialStore(credentials)
    for identity, secret in secrets.items():
        store.add(identity, secret)
    store.save()
    return RouterConfig(
        domain=domain,
        credentials=credentials,
        certificate=certPath,
        key=keyPath,
        listen=("tcp:0:interface=127.0.0.1",),
        **options,
    )
