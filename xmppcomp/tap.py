# -*- test-case-name: tests.test_tap -*-
"""
C{twistd xmppcomp}: options and service construction.

The component service itself arrives with the component issue; until then
the plugin says so plainly instead of pretending to run.
"""

from __future__ import annotations

from twisted.application.service import IService
from twisted.python import usage

NOT_YET = (
    "twistd xmppcomp: the component service is not yet available in this "
    "version of xmppcomp (the stream negotiation layer is; see README.md)."
)


class Options(usage.Options):
    """
    Options of C{twistd xmppcomp}.
    """

    synopsis = "[options]"
    longdesc = NOT_YET


def makeService(config: Options) -> IService:
    """
    Build the service tree for C{twistd xmppcomp}.

    @raise SystemExit: always, for now, with a message that says why.
    """
    raise SystemExit(NOT_YET)
