"""The engine's server context: a plain Read answered inline, everything else as aiocoap does.

aiocoap 0.4.17 serves every request in a task of its own (``Context.render_to_pipe`` runs the
site's ``render_to_pipe`` through ``run_driving_pipe``, behind a second pipe that turns
exceptions into error responses). For a server's Read of the gateway's own objects, that task
and its pipe were most of the CPU the request cost: nothing in such a Read awaits anything.

So :class:`ServingContext` first asks its site to answer the request inline (``render_now``
of ``bridged.engine.options.CheckedSite``, ``bridged.engine.site.ClientSite`` and
``bridged.engine.dm.DeviceManagementResource``): a request the option check refuses, and a
plain Read (no Observe, no Block1, not a later Block2 block) that device management answers
from the tree. The response is the one the general path gives (the same reply, through
aiocoap's own Block2 handling). Anything else, and anything a site cannot answer without
awaiting (a node's value, an observation, a block-wise upload, the Bootstrap interface), goes
the general way. Who is served (``peers_only``) is decided below this, in the message layer.
"""

from __future__ import annotations

import logging
from typing import Any

import aiocoap

from .options import CheckedSite

log = logging.getLogger(__name__)


class ServingContext(aiocoap.Context):
    """An aiocoap context serving ``site`` behind the option check (``CheckedSite``), with
    the inline answer of the module docstring."""

    def __init__(self, site: Any, **kwargs: Any) -> None:
        super().__init__(serversite=None if site is None else CheckedSite(site), **kwargs)

    def render_to_pipe(self, pipe: Any) -> None:
        site = self.serversite
        try:
            answered = site is not None and site.render_now(pipe)
        except Exception:
            # A fault in the inline answer is not the request's: the general path answers it
            # (aiocoap turns an exception there into 5.00).
            log.exception("answering %r inline", pipe.request)
            answered = False
        if not answered:
            super().render_to_pipe(pipe)
