"""The peers a ``peers_only`` message layer serves on each of its sockets
(``BoundedMessageManager``): the destinations of the socket's own requests, the latest
``PEERS_KEPT``, and no others; a socket of one peer (each of the endpoints mode's 10,000) keeps
that peer itself, not a tuple of it (48 bytes each, issue 17)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from aiocoap.numbers.codes import Code

from bridged.engine.coap import PEERS_KEPT, BoundedMessageManager, CoapLimits


class Remote:
    """A peer's address through the socket ``interface`` (equal only to itself)."""

    def __init__(self, interface: object) -> None:
        self.interface = interface


def layer() -> BoundedMessageManager:
    tokens: Any = SimpleNamespace(log=logging.getLogger("test"), loop=None)
    return BoundedMessageManager(tokens, CoapLimits(), peers_only=True, address=lambda r: r)


def requested(layer: BoundedMessageManager, remote: Remote) -> None:
    layer._remember_peer(SimpleNamespace(code=Code.POST, remote=remote))  # type: ignore[arg-type]


def test_a_socket_serves_the_peers_its_requests_went_to_the_latest_kept() -> None:
    mine, other = object(), object()
    on_mine = [Remote(mine) for _ in range(PEERS_KEPT + 1)]
    on_other = Remote(other)
    served = layer()
    requested(served, on_mine[0])
    requested(served, on_mine[0])
    requested(served, on_other)
    assert served._peers[mine] is on_mine[0], "one peer: itself, no tuple"
    assert served.serves(on_mine[0]) and served.serves(on_other)
    assert not served.serves(on_mine[1]) and not served.serves(Remote(mine))
    for remote in on_mine[1:]:
        requested(served, remote)
    assert not served.serves(on_mine[0]), "the oldest of more than PEERS_KEPT is forgotten"
    assert all(served.serves(remote) for remote in on_mine[1:])
    requested(served, on_mine[2])  # asked again: the latest
    requested(served, Remote(mine))
    assert served.serves(on_mine[2]) and not served.serves(on_mine[1])
