# -*- test-case-name: tests.test_stream_sasl -*-
"""
Compatibility shim: make scramp accept the C{tls-exporter} channel-binding
type (RFC 9266) when the binding data is given as bytes.

scramp 1.5 knows the name but lists it in C{CbName.UNSUPPORTED_TYPES},
only because Python's C{ssl} module cannot export keying material. xmppcomp
gets the 32 exported bytes from pyOpenSSL
(L{xmppcomp.stream.channelbinding.ChannelBindingData.tlsExporter}) and
always hands scramp bytes, so scramp has nothing to compute: binding with
bytes is the same code path as for C{tls-server-end-point}. Given an
C{ssl} socket instead of bytes, scramp still refuses C{tls-exporter}
("Channel binding name not recognized"), so nothing silently goes wrong.

The change is global to scramp in this process and only ever makes it
accept more. Delete this module, and the two calls to
L{installTlsExporter} (in C{mechanisms.py} and C{receiving.py}), once
scramp lists C{tls-exporter} in C{CbName.SUPPORTED_TYPES}; the function
already does nothing in that case.
"""

from __future__ import annotations

from typing import Any

from scramp import core as _scrampCore

from xmppcomp.stream.channelbinding import TLS_EXPORTER


def installTlsExporter(cbName: Any = _scrampCore.CbName) -> None:  # Any: scramp is untyped
    """
    Move C{tls-exporter} from C{cbName.UNSUPPORTED_TYPES} to
    C{cbName.SUPPORTED_TYPES}. Idempotent.

    @param cbName: the class to change; scramp's C{CbName} unless a test
        passes a stand-in.
    """
    if TLS_EXPORTER in cbName.SUPPORTED_TYPES:
        return
    cbName.SUPPORTED_TYPES = cbName.SUPPORTED_TYPES | {TLS_EXPORTER}
    cbName.UNSUPPORTED_TYPES = cbName.UNSUPPORTED_TYPES - {TLS_EXPORTER}
