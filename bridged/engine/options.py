"""Which CoAP request options the engine serves: one table, and the check that applies it.

RFC 7252 §5.4.1: a request with a critical option (odd number) that the server does not
process must not be served as if the option were absent; it gets 4.02 Bad Option. aiocoap
parses every option and leaves that decision to the application (its ``Site`` checks only
options it has never heard of, and the engine's resources are not a ``Site``), so a GET with
If-None-Match, a request protected by OSCORE or one asking for Q-Block would be served as a
plain request. Here, a critical option is served only when ``SERVED`` lists it for the
request's method, once unless it is repeatable (§5.4.5: a non-repeatable critical option that
appears twice is treated as unrecognised). Elective options are read where the engine uses them
(Content-Format, Observe, Size1/2, No-Response) and otherwise ignored, as §5.4.1 allows.

Not served, so 4.02: If-Match and If-None-Match (the engine keeps no ETags, so no condition can
be evaluated), OSCORE and EDHOC (RFC 8613, 9528: no security context here), Q-Block1/2 (RFC
9177), and any critical option not named below. Proxy-Uri and Proxy-Scheme ask the client to
act as a forward proxy, which it is not: 5.05 Proxying Not Supported (RFC 7252 §5.10.2).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiocoap
from aiocoap.numbers.codes import Code
from aiocoap.numbers.optionnumbers import OptionNumber

from bridged.objects.errors import BadOption, LwM2MError, ProxyingNotSupported

from .dm import Reply, error_reply, reply_message
from .site import Answer, answer_now

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Served:
    """How a critical option is served: with which methods (None: every one), and whether it
    may appear more than once."""

    methods: frozenset[Code] | None = None
    repeatable: bool = False


WITH_PAYLOAD = frozenset({Code.PUT, Code.POST, Code.FETCH, Code.iPATCH})

SERVED: Mapping[int, Served] = {
    OptionNumber.URI_HOST: Served(),  # one origin per socket: any host names it
    OptionNumber.URI_PORT: Served(),
    OptionNumber.URI_PATH: Served(repeatable=True),
    OptionNumber.URI_QUERY: Served(repeatable=True),
    OptionNumber.ACCEPT: Served(),
    OptionNumber.BLOCK1: Served(WITH_PAYLOAD),  # RFC 7959, assembled by aiocoap
    OptionNumber.BLOCK2: Served(),
}
"""The critical options the engine serves (see the module docstring)."""

PROXY_OPTIONS = frozenset({OptionNumber.PROXY_URI, OptionNumber.PROXY_SCHEME})


def check_options(method: int, numbers: Iterable[int]) -> None:
    """Raise the error a request of ``method`` with options ``numbers`` (in any order, each as
    often as it appears) must get; return if it can be served."""
    counts: dict[int, int] = {}
    for n in numbers:
        if n & 1:  # critical (RFC 7252 §5.4.6: odd numbers); electives are not checked here
            counts[n] = counts.get(n, 0) + 1
    if proxy := sorted(counts.keys() & PROXY_OPTIONS):
        raise ProxyingNotSupported(f"option {proxy[0]}: this client is not a proxy")
    for number, count in sorted(counts.items()):
        served = SERVED.get(number)
        if served is None:
            raise BadOption(f"critical option {_name(number)} is not supported")
        if served.methods is not None and method not in served.methods:
            raise BadOption(f"critical option {_name(number)} does not apply to {Code(method)}")
        if count > 1 and not served.repeatable:
            raise BadOption(f"critical option {_name(number)} appears {count} times")


def check_request(request: aiocoap.Message) -> None:
    """``check_options`` of an aiocoap request."""
    check_options(request.code, (option.number for option in request.opt.option_list()))


def _name(number: int) -> str:
    name = getattr(OptionNumber(number), "name", None)
    return f"{number} ({name})" if name else str(number)


class CheckedSite:
    """A context's server site behind ``check_request``: a request that cannot be served as
    asked gets its error here, before any resource (block-wise assembly, Observe, the
    Bootstrap interface or device management) sees it. Every engine context serves its site
    through one (``bridged.engine.coap.create_context``, the DTLS endpoint)."""

    def __init__(self, site: Any) -> None:
        self.site = site

    async def render_to_pipe(self, pipe: Any) -> None:
        refusal = self._refusal(pipe.request)
        if refusal is not None:
            pipe.add_response(reply_message(refusal), is_last=True)
            return
        await self.site.render_to_pipe(pipe)

    def answer_now(self, request: aiocoap.Message) -> Answer | None:
        """The response to ``request`` at once (``bridged.engine.serving``): its error, or the
        site's ``answer_now``; None: not answered, for ``render_to_pipe``."""
        refusal = self._refusal(request)
        return refusal if refusal is not None else answer_now(self.site, request)

    def _refusal(self, request: aiocoap.Message) -> Reply | None:
        """The error reply to ``request`` if ``check_request`` refuses it."""
        try:
            check_request(request)
        except LwM2MError as e:
            log.info("request from %s: %s %s", request.remote, e.code_text, e)
            return error_reply(e)
        return None
