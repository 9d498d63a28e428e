"""The aiocoap internals the engine relies on, pinned: a release that changes one fails here.

The engine replaces or wraps private parts of aiocoap 0.4.17 (``bridged.engine.coap``'s
message manager, the inline answer of ``bridged.engine.serving``, the UDP guards of
``bridged.engine.udp``, the DTLS transports of ``bridged.engine.dtls`` and ``dtls_listen``).
pyproject.toml pins aiocoap below 0.4.18, but a patch release, or a distribution's patched
package, may still change them. Each is listed here with a fingerprint of its source as 0.4.17
ships it and what relies on it; a change fails the test with the names to re-read. Then: read
aiocoap's new code, adapt the module named, and only then update the fingerprint.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect

import aiocoap.meta
import pytest

PINNED_VERSION = "0.4.17"

INTERNALS: dict[tuple[str, str], tuple[str, str]] = {
    # (module, qualified name): (sha256 of its source, first 16 hex digits; who relies on it)
    ("aiocoap.messagemanager", "MessageManager._process_request"): (
        "d7ad5155990a4737",
        "bridged.engine.coap: the inline answer runs before it, the general path is it",
    ),
    ("aiocoap.messagemanager", "MessageManager.dispatch_message"): (
        "74449686c5ca98ad",
        "bridged.engine.coap: wrapped (who is served, token length); it deduplicates first; "
        "transports.ieee802154.coap_link: a node's NON notification skips it (it neither "
        "deduplicates nor acknowledges one)",
    ),
    ("aiocoap.messagemanager", "MessageManager.send_message"): (
        "c3f4ab610981dc97",
        "bridged.engine.serving: the inline answer does its piggybacked-ACK part itself",
    ),
    ("aiocoap.messagemanager", "MessageManager._deduplicate_message"): (
        "c1bd664fd011cac1",
        "bridged.engine.coap: replaced by the bounded cache",
    ),
    ("aiocoap.messagemanager", "MessageManager._store_response_for_duplicates"): (
        "e8444712cfbb49bb",
        "bridged.engine.coap: replaced by the bounded cache",
    ),
    ("aiocoap.messagemanager", "MessageManager._send_initially"): (
        "87b047727148d080",
        "bridged.engine.coap: wrapped for Message-ID pacing",
    ),
    ("aiocoap.messagemanager", "MessageManager._send_via_transport"): (
        "18ecd8c95a1a0c3c",
        "bridged.engine.coap: the inline answer and duplicates send encoded bytes through it",
    ),
    ("aiocoap.messagemanager", "MessageManager._add_exchange"): (
        "0b005c18e003af50",
        "bridged.engine.coap: wrapped to watch acknowledgements and time CONs for the RTT",
    ),
    ("aiocoap.messagemanager", "MessageManager._remove_exchange"): (
        "a8ef9c56a6015e63",
        "bridged.engine.coap: wrapped to watch acknowledgements and RSTs to NON notifications",
    ),
    ("aiocoap.messagemanager", "MessageManager._retransmit"): (
        "6e88f16f0f816e49",
        "bridged.engine.coap: wrapped, so a retransmitted CON is no RTT sample (Karn)",
    ),
    ("aiocoap.tokenmanager", "TokenManager.process_request"): (
        "fae4bb07f479c354",
        "bridged.engine.coap: a token still in incoming_requests leaves a Read to the general path",
    ),
    ("aiocoap.protocol", "Context.render_to_pipe"): (
        "db9191612a64e0c4",
        "bridged.engine.serving: the general path the inline answer must equal",
    ),
    ("aiocoap.transports.udp6", "MessageInterfaceUDP6.send"): (
        "b2401cf3f80c3085",
        "bridged.engine.serving.Encoded: send reads only a message's remote and encode()",
    ),
    ("aiocoap.transports.udp6", "MessageInterfaceUDP6.datagram_msg_received"): (
        "b24499ce829025ac",
        "bridged.engine.udp: the receive guard wraps it; "
        "bridged.engine.sockets.Sockets: parses and dispatches a datagram as it does",
    ),
    ("aiocoap.transports.udp6", "MessageInterfaceUDP6.datagram_errqueue_received"): (
        "7cbf41ed5f729f5d",
        "bridged.engine.sockets.Sockets: an ICMP error is its peer's error, as here; "
        "bridged.engine.udp: the receive guard strips the arrival stamp before it",
    ),
    ("aiocoap.util.asyncio.recvmsg", "RecvmsgSelectorDatagramTransport._read_ready"): (
        "ebb2ad8c43ea63c9",
        "bridged.engine.sockets.Sockets: reads the error queue, then a datagram, as here",
    ),
    ("aiocoap.transports.tinydtls", "MessageInterfaceTinyDTLS.send"): (
        "1a0cc79e96679913",
        "bridged.engine.serving.Encoded: send reads only a message's remote and encode()",
    ),
    ("aiocoap.transports.udp6", "MessageInterfaceUDP6.determine_remote"): (
        "007af190c1fb3a23",
        "bridged.engine.coap.admit: resolves the Bootstrap-Server's URI as a request's; "
        "bridged.engine.sockets.Sockets.resolve: resolves a server's for an uplink's socket",
    ),
    ("aiocoap.transports.udp6", "UDP6EndpointAddress.__init__"): (
        "39e2f0441f3be4d8",
        "bridged.engine.sockets.SocketAddress: replaced (the socket held, not a weak reference "
        "_interface); on_socket turns one made by it into one",
    ),
    ("aiocoap.transports.udp6", "UDP6EndpointAddress.__eq__"): (
        "94e4281773d9e6d5",
        "bridged.engine.sockets.SocketAddress: replaced, to tell the sockets apart",
    ),
    ("aiocoap.transports.udp6", "UDP6EndpointAddress.__hash__"): (
        "e3329cadb37bb2f4",
        "bridged.engine.sockets.SocketAddress: replaced, to tell the sockets apart",
    ),
    ("aiocoap.transports.udp6", "MessageInterfaceUDP6._create_transport_endpoint"): (
        "e60ca75c72a55370",
        "bridged.engine.coap.create_context: a udp6 interface on a socket of the engine's, "
        "dispatching to the given layer; bridged.engine.sockets.Sockets.open: its socket options",
    ),
    ("aiocoap.messagemanager", "MessageManager.__init__"): (
        "72c9368529c43e76",
        "bridged.engine.coap.BoundedMessageManager.close_interface: _active_exchanges, _backlogs",
    ),
    ("aiocoap.messagemanager", "MessageManager.fill_or_recognize_remote"): (
        "925609e4f41df9ea",
        "bridged.engine.coap: wrapped, so a request's remote is the layer's kind of address",
    ),
    ("aiocoap.messagemanager", "MessageManager.dispatch_error"): (
        "04ec2c6156f2cdeb",
        "bridged.engine.coap.BoundedMessageManager.close_interface: ends one peer's business",
    ),
    ("aiocoap.tokenmanager", "TokenManager.__init__"): (
        "0ed7810ee6c99d82",
        "bridged.engine.coap.BoundedMessageManager.close_interface: incoming_requests and "
        "outgoing_requests keyed by (token, remote)",
    ),
    ("aiocoap.tokenmanager", "TokenManager.dispatch_error"): (
        "fc6ff94883b34f8d",
        "bridged.engine.coap.BoundedMessageManager.close_interface: ends one peer's requests",
    ),
    ("aiocoap.transports.tinydtls_server", "_AddressDTLS._event"): (
        "63dc29ab362aa5f9",
        "bridged.engine.dtls_listen._PskSession: a close_notify at warning level ends it",
    ),
    ("aiocoap.transports.tinydtls_server", "_AddressDTLS._inject_error"): (
        "3460eb3786a5ca8c",
        "bridged.engine.dtls_listen._PskSession: ends the session and forgets it",
    ),
    ("aiocoap.transports.tinydtls_server", "_DatagramServerSocketSimpleDTLS.datagram_received"): (
        "8f33506708991bc5",
        "bridged.engine.dtls_listen._PskSessions: makes each session of its _Address",
    ),
    ("aiocoap.transports.tinydtls_server", "MessageInterfaceTinyDTLSServer.create_server"): (
        "bb6181e21124d967",
        "bridged.engine.dtls_listen._PskListener.create_server: the same, without the port offset",
    ),
    ("aiocoap.protocol", "ClientObservation.register_callback"): (
        "a2dd85dbe9e903e1",
        "transports.ieee802154.notifications: every notification, registered as the iterator does",
    ),
    ("aiocoap.protocol", "ClientObservation.register_errback"): (
        "42382433a7cf3c80",
        "transports.ieee802154.notifications: the observation's end",
    ),
}


def fingerprint(module: str, name: str) -> str:
    obj: object = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]  # type: ignore[arg-type]


def test_aiocoap_is_the_pinned_release() -> None:
    assert aiocoap.meta.version == PINNED_VERSION, (
        f"aiocoap {aiocoap.meta.version} is installed; the engine adapts {PINNED_VERSION}'s "
        "internals (see this module's docstring)"
    )


@pytest.mark.parametrize("where", list(INTERNALS), ids=[".".join(k) for k in INTERNALS])
def test_an_internal_the_engine_relies_on_is_unchanged(where: tuple[str, str]) -> None:
    module, name = where
    if module.startswith("aiocoap.transports.tinydtls"):
        pytest.importorskip("DTLSSocket")
    expected, relier = INTERNALS[where]
    assert fingerprint(module, name) == expected, (
        f"aiocoap's {module}.{name} changed: re-read it and adapt {relier}"
    )
