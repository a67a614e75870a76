# -*- test-case-name: tests.test_stream_sasl -*-
"""
The initiating entity's side of SASL negotiation (RFC 6120 section 6.4):
elements in, elements out, no I/O.
"""

from __future__ import annotations

from twisted.words.xish import domish

from xmppcomp.errors import NegotiationError, SASLFailure
from xmppcomp.interfaces import IInitiatingMechanism
from xmppcomp.ns import NS_SASL
from xmppcomp.stream.sasl._wire import decodeData, saslElement


class SASLInitiator:
    """
    Drive one SASL exchange with a mechanism.

    Call L{start} and send the element, then pass each SASL element the
    receiving entity sends to L{receive} and send back what it returns,
    until it returns C{None} (success: L{done} is then true and the stream
    must be restarted) or raises.

    @ivar mechanism: the mechanism in use.
    @ivar done: whether the exchange succeeded.
    @ivar _state: C{"new"}, C{"started"}, C{"aborting"}, C{"done"} or
        C{"ended"} (failed).
    """

    def __init__(self, mechanism: IInitiatingMechanism) -> None:
        self.mechanism = mechanism
        self.done = False
        self._state = "new"

    def start(self) -> domish.Element:
        """
        The C{<auth/>} element, with the initial response if the mechanism
        has one.

        @raise NegotiationError: already started.
        """
        if self._state != "new":
            raise NegotiationError("SASL exchange already started")
        self._state = "started"
        auth = saslElement("auth", self.mechanism.getInitialResponse())
        auth["mechanism"] = self.mechanism.name
        return auth

    def receive(self, element: domish.Element) -> domish.Element | None:
        """
        Process one element from the receiving entity.

        @return: the C{<response/>} to send for a C{<challenge/>}; C{None}
            for C{<success/>}, once the mechanism accepted its additional
            data.
        @raise SASLFailure: the receiving entity answered C{<failure/>}.
        @raise NegotiationError: anything else that ends the exchange: an
            element out of place, bad base64, a challenge or success the
            mechanism refuses (for SCRAM, a wrong server signature).
        """
        if self._state == "aborting":
            self._state = "ended"
            if element.uri == NS_SASL and element.name == "failure":
                raise SASLFailure.fromElement(element)
            raise NegotiationError(
                f"unexpected {{{element.uri}}}{element.name} after <abort/>"
            )
        if self._state != "started":
            raise NegotiationError(
                f"unexpected SASL element <{element.name}/>: the exchange is "
                f"{'not started' if self._state == 'new' else 'over'}"
            )
        if element.uri != NS_SASL or element.name not in (
            "challenge",
            "success",
            "failure",
        ):
            self._state = "ended"
            raise NegotiationError(
                f"unexpected element {{{element.uri}}}{element.name} during SASL"
            )
        if element.name == "failure":
            self._state = "ended"
            raise SASLFailure.fromElement(element)
        try:
            data = decodeData(element)
        except ValueError as e:
            self._state = "ended"
            raise NegotiationError(
                f"the server sent invalid base64 in <{element.name}/>"
            ) from e
        try:
            if element.name == "challenge":
                return saslElement("response", self.mechanism.getResponse(data or b""))
            self.mechanism.checkSuccess(data)
        except NegotiationError:
            self._state = "ended"
            raise
        self._state = "done"
        self.done = True
        return None

    def abort(self) -> domish.Element:
        """
        The C{<abort/>} element. The receiving entity answers with
        C{<failure><aborted/></failure>}, which L{receive} then raises as
        L{SASLFailure}; any other answer is a L{NegotiationError}.

        @raise NegotiationError: the exchange already succeeded.
        """
        if self._state == "done":
            raise NegotiationError("cannot abort: SASL already succeeded")
        self._state = "aborting"
        return saslElement("abort")
