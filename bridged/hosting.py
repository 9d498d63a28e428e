"""What the gateway lends its transports: the contract's ``TransportHost``, built here once,
so that the daemon and whoever else runs a transport (the tests, the benchmarks) hand it the
same object definitions and the same CoAP message layer, and no transport reaches into the
engine for them."""

from __future__ import annotations

from bridged.engine.coap import append_transport
from bridged.objects.definitions import Registry
from bridged.transports.base import TransportHost


def transport_host(definitions: Registry) -> TransportHost:
    """The host for transports of a gateway that knows ``definitions`` (built-in and the
    operator's DDF files): the engine's bounded CoAP message layer for their CoAP sides."""
    return TransportHost(definitions, append_transport)
