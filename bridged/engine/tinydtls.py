"""A small ctypes binding to the tinydtls compiled into DTLSSocket, for raw public keys (RFC 7250).

Why this exists: LwM2M's security mode 1 is DTLS 1.2 with TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 and
raw P-256 public keys, which tinydtls does natively (its ``get_ecdsa_key`` / ``verify_ecdsa_key``
callbacks), and DTLSSocket (aiocoap's ``tinydtls`` transport, already a dependency for PSK)
compiles tinydtls with ECC in; but DTLSSocket's Cython binding fills only the PSK callbacks. The
C functions are exported by its extension module, so this module calls them through ctypes, in
both roles (the client's uplink, and the in-repo test server). docs/security.md has the
comparison with OpenSSL >= 3.2 and the other candidates.

What ctypes must restate of tinydtls is kept to the stable minimum and checked at load:

* ``dtls_handler_t``: seven function pointers (write, read, event, get_user_parameters,
  get_psk_info, get_ecdsa_key, verify_ecdsa_key), the layout of tinydtls 0.8.6 built with
  DTLS_PSK and DTLS_ECC, which is DTLSSocket 0.2.3's; :data:`KNOWN_VERSIONS` names the versions
  whose layout was read, any other is refused with :class:`TinyDtlsUnavailable`.
* ``dtls_set_handler`` is a ``static inline`` (``ctx->h = h``): the handler pointer is the field
  after ``app``, which is found by giving ``dtls_new_context`` a sentinel and looking for it.
* ``dtls_ecdsa_key_t``: the curve (an enum) and three byte pointers.
* sessions are opaque: made from a ``sockaddr`` by ``dtls_new_session`` and read back by
  ``dtls_session_addr``.
* ``dtls_init`` (its clock's start, ``dtls_clock_offset``, a 64-bit ``time_t``) is called only
  when nothing did yet: DTLSSocket calls it for each PSK context, and the process has one
  tinydtls.

Keys stay in memory owned by the :class:`Context` (tinydtls keeps pointers, not copies) and are
never logged.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KNOWN_VERSIONS = frozenset({b"0.8.6"})
"""tinydtls versions whose ``dtls_handler_t`` and ``dtls_context_t`` were read for this binding."""
TICKS_PER_SECOND = 1000
"""tinydtls' DTLS_TICKS_PER_SECOND on POSIX (CLOCK_SECOND)."""
EVENT_CONNECTED = 0x01DE
"""DTLS_EVENT_CONNECTED: the handshake finished."""
ALERT_LEVEL_FATAL = 2
ALERT_CLOSE_NOTIFY = 0
ALERT_BAD_CERTIFICATE = 42
CURVE_SECP256R1 = 0
"""DTLS_ECDH_CURVE_SECP256R1, the only curve tinydtls has (LwM2M's)."""
COORDINATE = 32
"""A P-256 coordinate or private scalar, in bytes."""


class TinyDtlsUnavailable(RuntimeError):
    """The tinydtls in DTLSSocket cannot be used for raw public keys here; says why."""


Address = tuple[str, int]
_Bytes: TypeAlias = "ctypes._Pointer[ctypes.c_uint8]"

_WRITE = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t
)
_EVENT = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_ushort
)
_GET_KEY = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)
)
_VERIFY_KEY = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint8),
    ctypes.POINTER(ctypes.c_uint8),
    ctypes.c_size_t,
)


class _Handler(ctypes.Structure):
    _fields_ = [
        ("write", _WRITE),
        ("read", _WRITE),
        ("event", _EVENT),
        ("get_user_parameters", ctypes.c_void_p),
        ("get_psk_info", ctypes.c_void_p),
        ("get_ecdsa_key", _GET_KEY),
        ("verify_ecdsa_key", _VERIFY_KEY),
    ]


class _EcdsaKey(ctypes.Structure):
    _fields_ = [
        ("curve", ctypes.c_int),
        ("priv_key", ctypes.c_char_p),
        ("pub_key_x", ctypes.c_char_p),
        ("pub_key_y", ctypes.c_char_p),
    ]


@dataclass(frozen=True, slots=True)
class RawKey:
    """A P-256 key pair as tinydtls takes it: the private scalar and the public point.

    ``repr`` never shows the private scalar."""

    private: bytes = field(repr=False)
    x: bytes
    y: bytes

    @classmethod
    def from_der(cls, private_key: bytes) -> RawKey:
        """From a PKCS#8 or SEC1 DER private key (/0/x/5); ValueError if it is not P-256."""
        key = serialization.load_der_private_key(private_key, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("the private key is not an EC P-256 key (raw public key mode)")
        numbers = key.private_numbers()
        point = numbers.public_numbers
        return cls(
            numbers.private_value.to_bytes(COORDINATE, "big"),
            point.x.to_bytes(COORDINATE, "big"),
            point.y.to_bytes(COORDINATE, "big"),
        )

    @property
    def public_der(self) -> bytes:
        """The public key as a SubjectPublicKeyInfo, DER (what /0/x/3 carries)."""
        return public_der(self.x, self.y)


def public_der(x: bytes, y: bytes) -> bytes:
    """The SubjectPublicKeyInfo (DER) of the P-256 point (``x``, ``y``)."""
    point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
    return point.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def point_of(spki: bytes) -> tuple[bytes, bytes]:
    """The (x, y) of a P-256 public key given as a SubjectPublicKeyInfo (DER) or as the raw
    64-byte x||y some servers provision; ValueError otherwise."""
    if len(spki) == 2 * COORDINATE:
        return spki[:COORDINATE], spki[COORDINATE:]
    key = serialization.load_der_public_key(spki)
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("the public key is not an EC P-256 key (raw public key mode)")
    point = key.public_numbers()
    return point.x.to_bytes(COORDINATE, "big"), point.y.to_bytes(COORDINATE, "big")


@cache
def library() -> ctypes.CDLL:
    """DTLSSocket's extension module as a C library, its functions typed; TinyDtlsUnavailable
    when DTLSSocket is missing or its tinydtls is not one whose layout this binding knows."""
    try:
        from DTLSSocket import dtls
    except ImportError as e:
        raise TinyDtlsUnavailable(f"DTLSSocket is not installed ({e})") from None
    lib = ctypes.CDLL(dtls.__file__)
    try:
        lib.dtls_package_version.restype = ctypes.c_char_p
        lib.dtls_ecdsa_create_sig  # noqa: B018 - ECC compiled in
    except AttributeError as e:
        raise TinyDtlsUnavailable(f"DTLSSocket's tinydtls lacks {e}") from None
    version = lib.dtls_package_version()
    if version not in KNOWN_VERSIONS:
        raise TinyDtlsUnavailable(
            f"DTLSSocket's tinydtls is {version!r}, whose layout this binding was not checked"
            f" against (known: {', '.join(v.decode() for v in sorted(KNOWN_VERSIONS))})"
        )
    void = ctypes.c_void_p
    signatures: dict[str, tuple[type | None, list[type]]] = {
        "dtls_init": (None, []),
        "dtls_new_context": (void, [void]),
        "dtls_free_context": (None, [void]),
        "dtls_connect": (ctypes.c_int, [void, void]),
        "dtls_close": (ctypes.c_int, [void, void]),
        "dtls_handle_message": (ctypes.c_int, [void, void, ctypes.c_char_p, ctypes.c_int]),
        "dtls_write": (ctypes.c_int, [void, void, ctypes.c_char_p, ctypes.c_size_t]),
        "dtls_check_retransmit": (None, [void, ctypes.POINTER(ctypes.c_uint32)]),
        "dtls_ticks": (None, [ctypes.POINTER(ctypes.c_uint32)]),
        "dtls_get_peer": (void, [void, void]),
        "dtls_reset_peer": (None, [void, void]),
        "dtls_new_session": (void, [ctypes.c_char_p, ctypes.c_uint32]),
        "dtls_free_session": (None, [void]),
        "dtls_session_addr": (void, [void, ctypes.POINTER(ctypes.c_uint32)]),
        "dtls_set_log_level": (None, [ctypes.c_int]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    # dtls_init restarts tinydtls' clock (dtls_clock_offset, a time_t): done already when
    # DTLSSocket made a PSK context, and doing it again would move the PSK sessions' timers
    if not ctypes.c_int64.in_dll(lib, "dtls_clock_offset").value:
        lib.dtls_init()
    return lib


def sockaddr(address: Address) -> bytes:
    """A ``struct sockaddr_in`` or ``sockaddr_in6`` for ``address`` (Linux layout)."""
    host, port = address[0], address[1]
    if ":" in host:
        packed = socket.inet_pton(socket.AF_INET6, host)
        return struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, 0) + packed + bytes(4)
    packed = socket.inet_pton(socket.AF_INET, host)
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + packed + bytes(8)


def address_of(data: bytes) -> Address:
    """The (host, port) of a ``struct sockaddr_in`` or ``sockaddr_in6``."""
    (family,) = struct.unpack_from("=H", data)
    (port,) = struct.unpack_from("!H", data, 2)
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, data[8:24]), port
    return socket.inet_ntop(socket.AF_INET, data[4:8]), port


class Handlers:
    """What a :class:`Context` tells its owner: datagrams to send, application data received,
    events (level, code), and whether a peer's public key (x, y) is trusted."""

    def write(self, peer: Address, data: bytes) -> None: ...

    def read(self, peer: Address, data: bytes) -> None: ...

    def event(self, peer: Address, level: int, code: int) -> None: ...

    def trusted(self, peer: Address, x: bytes, y: bytes) -> bool:
        return False


class Context:
    """One ``dtls_context_t`` with its own raw public key: a client's or a server's.

    ``handlers`` decides which peer keys are trusted; a peer whose key is refused gets a fatal
    bad_certificate alert and the handshake ends (tinydtls' behaviour), never a session.
    """

    def __init__(self, key: RawKey, handlers: Handlers) -> None:
        self._lib = library()
        self._handlers = handlers
        self._buffers = [
            ctypes.create_string_buffer(v, COORDINATE) for v in (key.private, key.x, key.y)
        ]
        self._key = _EcdsaKey(CURVE_SECP256R1, *(ctypes.addressof(b) for b in self._buffers))
        self._key_pointer = ctypes.pointer(self._key)
        self._handler = _Handler(
            write=_WRITE(self._on_write),
            read=_WRITE(self._on_read),
            event=_EVENT(self._on_event),
            get_user_parameters=None,  # tinydtls' defaults: the ECDHE-ECDSA CCM suites
            get_psk_info=None,  # no PSK suite offered or accepted: this context is RPK only
            get_ecdsa_key=_GET_KEY(self._on_get_key),
            verify_ecdsa_key=_VERIFY_KEY(self._on_verify_key),
        )
        self._sentinel = ctypes.c_char(b"\0")
        app = ctypes.addressof(self._sentinel)
        context = self._lib.dtls_new_context(app)
        if not context:
            raise TinyDtlsUnavailable("dtls_new_context failed (out of memory)")
        self._context: int | None = context
        self._set_handler(context, app)

    def _set_handler(self, context: int, app: int) -> None:
        """``dtls_set_handler``, which tinydtls has only as a ``static inline``: the handler
        pointer is the field after ``app`` (dtls.h, ``dtls_context_t``)."""
        pointer = ctypes.sizeof(ctypes.c_void_p)
        slots = (ctypes.c_void_p * 16).from_address(context)
        found = [i for i, value in enumerate(slots[:8]) if value == app]
        if len(found) != 1:
            self.free()
            raise TinyDtlsUnavailable("dtls_context_t's layout is not tinydtls 0.8.6's")
        handler_slot = found[0] + 1
        ctypes.c_void_p.from_address(context + handler_slot * pointer).value = ctypes.addressof(
            self._handler
        )

    # -- calls ------------------------------------------------------------------------------

    def _session(self, peer: Address) -> int:
        data = sockaddr(peer)
        session = self._lib.dtls_new_session(data, len(data))
        if not session:
            raise MemoryError("dtls_new_session")
        return int(session)

    def _call(self, peer: Address, call: Callable[[int, int], int]) -> int:
        if self._context is None:
            return -1
        session = self._session(peer)
        try:
            return call(self._context, session)
        finally:
            self._lib.dtls_free_session(session)

    def connect(self, peer: Address) -> int:
        """Start a handshake with ``peer`` (client role); below zero on error."""
        return self._call(peer, self._lib.dtls_connect)

    def handle(self, peer: Address, datagram: bytes) -> int:
        """Feed a datagram from ``peer``; negative is the alert tinydtls answered it with."""
        return self._call(
            peer, lambda c, s: self._lib.dtls_handle_message(c, s, datagram, len(datagram))
        )

    def write(self, peer: Address, data: bytes) -> int:
        """Send application data to ``peer`` in its session: the bytes taken; 0 when there is
        no session (tinydtls then starts a handshake and the data is not sent), below zero on
        error."""
        return self._call(peer, lambda c, s: self._lib.dtls_write(c, s, data, len(data)))

    def close(self, peer: Address) -> None:
        """Send ``peer`` a close_notify and forget its session."""
        self._call(peer, self._lib.dtls_close)

    def reset(self, peer: Address) -> None:
        """Forget ``peer``'s session without a word (a handshake given up)."""

        def reset(context: int, session: int) -> int:
            found = self._lib.dtls_get_peer(context, session)
            if found:
                self._lib.dtls_reset_peer(context, found)
            return 0

        self._call(peer, reset)

    def retransmit(self) -> float | None:
        """Send what is due for retransmission; seconds until the next one, or None."""
        if self._context is None:
            return None
        upcoming, now = ctypes.c_uint32(0), ctypes.c_uint32(0)
        self._lib.dtls_check_retransmit(self._context, ctypes.byref(upcoming))
        if not upcoming.value:
            return None
        self._lib.dtls_ticks(ctypes.byref(now))
        ahead = (upcoming.value - now.value) & 0xFFFFFFFF  # tinydtls' clock is 32 bits
        return 0.0 if ahead >= 1 << 31 else ahead / TICKS_PER_SECOND

    def free(self) -> None:
        """Release the context (its sessions go without a close_notify)."""
        if self._context is not None:
            self._lib.dtls_free_context(self._context)
            self._context = None

    # -- callbacks (errors cannot cross C; they are logged by ctypes and tinydtls sees -1) ---

    def _peer(self, session: int) -> Address:
        length = ctypes.c_uint32(0)
        address = self._lib.dtls_session_addr(session, ctypes.byref(length))
        return address_of(ctypes.string_at(address, length.value))

    def _on_write(
        self, context: int, session: int, data: ctypes.Array[ctypes.c_uint8], length: int
    ) -> int:
        self._handlers.write(self._peer(session), ctypes.string_at(data, length))
        return int(length)

    def _on_read(
        self, context: int, session: int, data: ctypes.Array[ctypes.c_uint8], length: int
    ) -> int:
        self._handlers.read(self._peer(session), ctypes.string_at(data, length))
        return 0

    def _on_event(self, context: int, session: int, level: int, code: int) -> int:
        self._handlers.event(self._peer(session), level, code)
        return 0

    def _on_get_key(self, context: int, session: int, result: ctypes.Array[ctypes.c_void_p]) -> int:
        result[0] = ctypes.addressof(self._key)
        return 0

    def _on_verify_key(
        self,
        context: int,
        session: int,
        x: _Bytes,
        y: _Bytes,
        size: int,
    ) -> int:
        peer = self._peer(session)
        if size == COORDINATE and self._handlers.trusted(
            peer, ctypes.string_at(x, size), ctypes.string_at(y, size)
        ):
            return 0
        return -((ALERT_LEVEL_FATAL << 8) | ALERT_BAD_CERTIFICATE)
