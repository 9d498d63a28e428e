"""The client's CoAP site: which interface serves an incoming request.

Normally every request goes to device management. While a bootstrap session is open, the
requests it claims (those from the Bootstrap-Server) go to the Bootstrap interface instead:
the same socket serves both, because the Bootstrap-Server answers the Bootstrap-Request and
then sends its requests to the address that request came from.

The choice is made in ``render_to_pipe``, before any resource sees the request, and the chosen
resource renders it with its own ``render_to_pipe``: block-wise assembly and Observe stay the
business of the resource that serves the request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import aiocoap
from aiocoap import resource
from aiocoap.numbers.codes import Code

from .dm import Reply

Claim = Callable[[aiocoap.Message], bool]

Answer: TypeAlias = "aiocoap.Message | Reply"
"""A response given at once (``bridged.engine.serving``): a Reply when it fits one message
(the message layer encodes it as the piggybacked ACK), else aiocoap's message."""
"""Whether a request belongs to a diverted interface."""


class ClientSite:
    """The context's server site: ``default`` unless a diversion claims the request."""

    def __init__(self, default: Any) -> None:
        self.default = default
        self._diversion: tuple[Claim, Any] | None = None

    def divert(self, claim: Claim, resource: Any) -> Callable[[], None]:
        """Send the requests ``claim`` accepts to ``resource`` until the returned function is
        called. One diversion at a time: a client runs one bootstrap session at a time."""
        if self._diversion is not None:
            raise RuntimeError("a diversion is already in place")
        diversion = (claim, resource)
        self._diversion = diversion

        def undo() -> None:
            if self._diversion is diversion:
                self._diversion = None

        return undo

    def target(self, request: aiocoap.Message) -> Any:
        """The resource that serves ``request``."""
        if self._diversion is not None and self._diversion[0](request):
            return self._diversion[1]
        return self.default

    async def render_to_pipe(self, pipe: Any) -> None:
        await self.target(pipe.request).render_to_pipe(pipe)

    def answer_now(self, request: aiocoap.Message) -> Answer | None:
        """The target's ``answer_now`` (``bridged.engine.serving``); None for a target
        without one."""
        return answer_now(self.target(request), request)


def answer_now(resource: Any, request: aiocoap.Message) -> Answer | None:
    """``resource``'s response to ``request`` at once if it gives one (its ``answer_now``);
    None: the request is for its ``render_to_pipe``."""
    answer: Callable[[aiocoap.Message], Answer | None] | None = getattr(
        resource, "answer_now", None
    )
    return None if answer is None else answer(request)


class NotServing(resource.Resource):
    """A site for a socket that serves no LwM2M Server (the bootstrap session's, outside the
    session itself): every request is 4.01."""

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(code=Code.UNAUTHORIZED, payload=b"this socket serves no server")
