"""CoAP over DTLS 1.2 with raw public keys towards one LwM2M server (security mode 1, RFC 7250).

The session is tinydtls' (through ``tinydtls``, our ctypes binding to the tinydtls DTLSSocket
compiles), on a socket of the session's own (``dtls_session``): TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8
with P-256 keys, LwM2M's mode 1 suite; no PSK suite is offered, so nothing can fall back to
another mode. The server's key is accepted only if it is /0/x/4's, checked inside the handshake
(tinydtls' ``verify_ecdsa_key``): a different key ends the handshake with a bad_certificate alert
and a :class:`DtlsIdentityError`; a server refusing the client's key shows as its alert
(:class:`DtlsAlertError`); a silent server as :class:`DtlsHandshakeError`.
"""

from __future__ import annotations

import asyncio

from aiocoap import error, interfaces

from .credentials import RpkCredentials
from .dtls import DEFAULT_HANDSHAKE_TIMEOUT, DtlsUplink
from .dtls_session import DatagramSession, SessionTransport, session_context
from .dtls_x509 import DtlsAlertError, DtlsIdentityError
from .tinydtls import (
    ALERT_CLOSE_NOTIFY,
    ALERT_LEVEL_FATAL,
    EVENT_CONNECTED,
    Address,
    Context,
    Handlers,
    RawKey,
)

CIPHER_SUITE = "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"
ALERTS = {
    10: "unexpected_message",
    20: "bad_record_mac",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    51: "decrypt_error",
    80: "internal_error",
}
"""The TLS alerts (RFC 5246 section 7.2) a raw public key handshake ends with, by name."""


def alert_name(code: int) -> str:
    return ALERTS.get(code, f"alert {code}")


class RpkSession(DatagramSession, Handlers):
    """One DTLS session with raw public keys: a tinydtls context of its own, driven by the
    session's socket and a retransmission timer from ``dtls_check_retransmit``.

    tinydtls reports through callbacks while it handles a datagram; what they report (data,
    events, a refused key) is collected and acted on once it returned, so aiocoap never runs
    inside tinydtls."""

    mode = "RPK"

    def __init__(
        self,
        transport: SessionTransport,
        host: str,
        port: int,
        credentials: RpkCredentials,
        handshake_timeout: float,
    ) -> None:
        self._key = RawKey.from_der(credentials.private_key)
        self._server_point = credentials.server_point
        self._context: Context | None = None
        self._peer: Address = (host, port)
        self._refused = False
        self._events: list[tuple[int, int]] = []
        self._plain: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        super().__init__(transport, host, port, handshake_timeout)

    # -- tinydtls' callbacks -----------------------------------------------------------------

    def write(self, peer: Address, data: bytes) -> None:
        self._sendto(data)

    def read(self, peer: Address, data: bytes) -> None:
        self._plain.append(data)

    def event(self, peer: Address, level: int, code: int) -> None:
        self._events.append((level, code))

    def trusted(self, peer: Address, x: bytes, y: bytes) -> bool:
        if (x, y) == self._server_point:
            return True
        self._refused = True
        return False

    # -- the session -------------------------------------------------------------------------

    def _handshake(self) -> None:
        assert self._udp is not None
        host, port, *_ = self._udp.get_extra_info("peername")
        self._peer = (host, port)
        self._context = Context(self._key, self)
        self._after(self._context.connect(self._peer))

    def _take(self, data: bytes) -> None:
        if self._context is not None:
            self._after(self._context.handle(self._peer, data))

    def _write(self, data: bytes) -> None:
        # 0: tinydtls has no session with the server and would start a handshake, data lost
        if self._context is not None and self._context.write(self._peer, data) <= 0:
            self._fail(error.NetworkError(f"the DTLS session with {self.hostinfo} is gone"))

    def _after(self, result: int) -> None:
        """Act on what tinydtls reported while it handled a datagram (``result``: its return,
        an alert it answered with when negative)."""
        events, self._events = self._events, []
        plain, self._plain = self._plain, []
        if self._refused:
            self._fail(
                DtlsIdentityError(
                    self.hostinfo, "its raw public key is not the server public key of /0/x/4"
                )
            )
            return
        for level, code in events:
            if (level, code) == (0, EVENT_CONNECTED) and not self._ready:
                self._established(CIPHER_SUITE)
            elif level == ALERT_LEVEL_FATAL:
                self._fail(
                    DtlsAlertError(self.hostinfo, f"the server sent a {alert_name(code)} alert")
                )
                return
            elif code == ALERT_CLOSE_NOTIFY and level != 0:
                self._closed_by_server()
                return
        if result < 0 and -result >> 8 == ALERT_LEVEL_FATAL:
            alert = alert_name(-result & 0xFF)
            self._fail(DtlsAlertError(self.hostinfo, f"the handshake failed here ({alert})"))
            return
        for data in plain:
            self._deliver(data)
        self._arm_retransmission()

    def _arm_retransmission(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._ready or self._closed or self._context is None:
            return
        wait = self._context.retransmit()
        if wait is not None:
            self._timer = asyncio.get_running_loop().call_later(wait, self._arm_retransmission)

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._context is None:
            return
        if self._ready:
            self._context.close(self._peer)
        self._context.free()
        self._context = None


class DtlsRpkUplink(DtlsUplink):
    """The endpoint towards a server in security mode 1 (raw public keys), over tinydtls."""

    @classmethod
    async def create(
        cls,
        server_uri: str,
        credentials: RpkCredentials,
        site: interfaces.Resource,
        *,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        loggername: str = "bridged.engine.dtls_rpk",
    ) -> DtlsRpkUplink:
        """The context for ``server_uri``, serving ``site`` over the session it opens."""
        context, transport = await session_context(
            site,
            loggername,
            lambda t, host, port: RpkSession(t, host, port, credentials, handshake_timeout),
        )
        return cls(context, transport, server_uri)
