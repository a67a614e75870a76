# -*- test-case-name: tests.test_listening -*-
"""
A listener of a configuration that cannot listen (L{ListenError}): which
address, which setting gives it, and why, in one line.

The services that listen (the HTTP-auth confirmer's web listener, the
router's XEP-0225, XEP-0114 and metrics listeners, the embedded router)
raise it from their start instead of Twisted's bare
L{CannotListenError}, which it extends, so code that catches that still
does. The twistd plugins print its message alone and exit
(L{xmppcomp._process.PluginProcess}); an application that builds the
services gets the exception.
"""

from __future__ import annotations

from twisted.internet.error import CannotListenError

__all__ = ["ListenError", "describeAddress"]


def describeAddress(interface: str | None, port: object) -> str:
    """
    The address a listener tried, as C{host:port}: C{0.0.0.0:8080} for a
    TCP port on every IPv4 interface (Twisted's interface C{""}),
    C{[::1]:8080} for IPv6, the path of a UNIX socket.

    @param interface: L{CannotListenError.interface}: the host, C{""}
        for every interface, C{None} for a UNIX socket.
    @param port: L{CannotListenError.port}: the port number, or the
        socket's path.
    """
    if interface is None:
        return str(port)
    host = interface or "0.0.0.0"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def _reason(error: object) -> str:
    """
    Why the system refused, in lower case: C{address already in use},
    C{permission denied}.
    """
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
    else:
        text = str(error)
    return text[:1].lower() + text[1:]


class ListenError(CannotListenError):
    """
    A listener cannot listen on the address its configuration gives. Its
    message is one line: C{cannot listen on 127.0.0.1:8080 (set by
    httpauth.listen or --http-listen): address already in use}.

    @ivar setting: what gives the address, as a message names it: the
        TOML key, dotted as in L{ConfigError
        <xmppcomp.configvalues.ConfigError>}'s messages, and the option
        (C{"httpauth.listen or --http-listen"}).
    @ivar description: the endpoint string the listener was given.
    """

    def __init__(self, setting: str, description: str, error: CannotListenError) -> None:
        """
        @param setting: see L{setting}.
        @param description: see L{description}.
        @param error: what the endpoint raised; its address and reason
            are kept (L{CannotListenError.interface}, C{port} and
            C{socketError}).
        """
        super().__init__(error.interface, error.port, error.socketError)
        self.setting = setting
        self.description = description

    def __str__(self) -> str:
        return (
            f"cannot listen on {describeAddress(self.interface, self.port)} "
            f"(set by {self.setting}): {_reason(self.socketError)}"
        )
