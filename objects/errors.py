"""Errors of the data model, each carrying the CoAP response code a server should see.

The engine answers a request that raised one of these with ``error.code`` and the message as
diagnostic payload, so every layer below it (paths, codecs, the tree) reports failures in
protocol terms instead of leaving the engine to guess.
"""

from __future__ import annotations

from typing import ClassVar


def coap_code(klass: int, detail: int) -> int:
    """Pack a CoAP code "c.dd" into its one-byte wire form."""
    return (klass << 5) | detail


class LwM2MError(Exception):
    """Base class: a failed LwM2M operation. ``code`` is the CoAP code as one byte."""

    code: ClassVar[int] = coap_code(5, 0)

    @property
    def code_text(self) -> str:
        """The code in the usual dotted form, e.g. ``"4.04"``."""
        return f"{self.code >> 5}.{self.code & 0x1F:02d}"


class BadRequest(LwM2MError):
    """4.00: the request or its payload is malformed."""

    code = coap_code(4, 0)


class BadOption(LwM2MError):
    """4.02: the request carries a critical option this client does not understand."""

    code = coap_code(4, 2)


class Unauthorized(LwM2MError):
    """4.01: the server has no access right for this operation."""

    code = coap_code(4, 1)


class Forbidden(LwM2MError):
    """4.03: the peer is known but not allowed (e.g. an unpaired node)."""

    code = coap_code(4, 3)


class NotFound(LwM2MError):
    """4.04: the object, instance, resource or resource instance does not exist."""

    code = coap_code(4, 4)


class MethodNotAllowed(LwM2MError):
    """4.05: the operation is not allowed on this target (e.g. a write to a read-only resource)."""

    code = coap_code(4, 5)


class NotAcceptable(LwM2MError):
    """4.06: the requested content format cannot represent this target."""

    code = coap_code(4, 6)


class RequestEntityIncomplete(LwM2MError):
    """4.08: a block-wise request body whose blocks do not follow on from each other (RFC 7959
    2.9.2), or whose first blocks were never received."""

    code = coap_code(4, 8)


class RequestEntityTooLarge(LwM2MError):
    """4.13: the payload is larger than this client accepts."""

    code = coap_code(4, 13)


class UnsupportedContentFormat(LwM2MError):
    """4.15: the payload's content format is unknown or unusable for this target."""

    code = coap_code(4, 15)


class InternalServerError(LwM2MError):
    """5.00: the client failed while serving a valid request."""

    code = coap_code(5, 0)


class ServiceUnavailable(LwM2MError):
    """5.03: the node behind the gateway cannot be reached now (out of range, radio down)."""

    code = coap_code(5, 3)


class ProxyingNotSupported(LwM2MError):
    """5.05: the request asks the client to act as a forward proxy (Proxy-Uri, Proxy-Scheme),
    which it is not (RFC 7252 5.10.2)."""

    code = coap_code(5, 5)


class GatewayTimeout(LwM2MError):
    """5.04: the node behind the gateway did not answer in time."""

    code = coap_code(5, 4)


class DecodeError(BadRequest):
    """A payload that does not parse as its content format claims (4.00)."""


class PathError(BadRequest):
    """A text or URI path that is not a valid LwM2M path (4.00)."""


def error_for_code(code: int, message: str) -> LwM2MError:
    """The error a peer's response ``code`` stands for, e.g. a node's 4.05 to a forwarded write,
    so it reaches the server with the same code. A code with no class of its own becomes the
    general error of its class (4.00 or 5.00), with the original code named in the message."""
    for cls in _BY_CODE:
        if cls.code == code:
            return cls(message)
    text = f"{code >> 5}.{code & 0x1F:02d}"
    if code >> 5 == 4:
        return BadRequest(f"{message} (the peer answered {text})")
    return InternalServerError(f"{message} (the peer answered {text})")


_BY_CODE: tuple[type[LwM2MError], ...] = (
    BadRequest,
    BadOption,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    RequestEntityIncomplete,
    RequestEntityTooLarge,
    UnsupportedContentFormat,
    InternalServerError,
    ServiceUnavailable,
    ProxyingNotSupported,
    GatewayTimeout,
)
