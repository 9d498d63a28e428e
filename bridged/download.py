"""Fetching a firmware package from the URI a server wrote to /5/0/1 (pull delivery).

coap:// and coaps:// are fetched block by block (Block2) and http:// and https:// through the
standard library, resumed with a Range request when the connection breaks before the end (a
server that ignores Range sends it all again, which is taken from the start). Every failure is a
``FirmwareError`` with the /5/0/5 code object 5 gives it: a URI that is not one is Invalid URI
(7), a scheme not offered in /5/0/8 Unsupported protocol (9), a package larger than the bound
Not enough flash (2), a transfer that broke and could not be resumed, or took longer than
``timeout``, Connection lost (4).

https:// verifies the package server's certificate, always: its chain against ``trust`` (the
CAs of ``[nodes] firmware_trust_store``) or, when none are configured, the system's trust
store, and its name against the URI's host. A server that fails the check (an unknown CA, a
certificate for another name, an expired one) is Connection lost (4) at once, not tried again:
object 5 has no code of its own for it (its Update Result lists 4 "Connection lost during
downloading process", 7 "Invalid URI" for a URI that names no package, 9 "Unsupported
protocol" for a scheme not offered), and the connection the download needed could not be
made safely, which another attempt would not change. A redirect from https:// to anything
else is refused the same way (a package from a server nobody verified); one to another
https:// URL is followed, and that server verified in turn.

coaps:// needs credentials for the package's host, which a Package URI cannot carry: the
gateway uses those of the LwM2M server configured at that host and port (its /0 instance, PSK
or certificates: ``LwM2MClient.package_session``), in a DTLS session of the download's own. A
coaps:// URI of any other host is Invalid URI (7), not Unsupported protocol (9): object 5 keeps
9 for a scheme the client does not offer, and coaps is offered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import aiocoap
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption

from bridged.engine.uplink import Uplink
from bridged.transports.firmware import DownloadProtocol, FirmwareError, UpdateResult

log = logging.getLogger(__name__)

SCHEMES = {
    "coap": DownloadProtocol.COAP,
    "coaps": DownloadProtocol.COAPS,
    "http": DownloadProtocol.HTTP,
    "https": DownloadProtocol.HTTPS,
}
"""What /5/0/8 offers."""
Session = Callable[[], Awaitable[Uplink]]
"""Opens a DTLS session to a coaps:// package's host, with the credentials configured for it."""
Credentials = Callable[[str], Session | None]
"""The ``Session`` for a coaps:// URI's host and port, None when none is configured."""
Trust = tuple[bytes, ...]
"""The CA certificates (DER) an https:// package's server is verified against; none: the
system's trust store."""
HTTP_ATTEMPTS = 3
"""Connections tried for one http(s) download: the first, and resumptions after a break."""
READ_TIMEOUT = 15.0
"""Seconds an http(s) read may wait for data: the fetch runs in a thread, which a cancelled
download (a reset /5, a stopping gateway) can only tell to stop between reads, so a stalled
server must not hold it (and the daemon's exit) for the whole download timeout."""
WHO_TRUSTS = ("the system's CAs", "the CAs of [nodes] firmware_trust_store")
"""What an https:// server was verified against (without a configured trust store, with)."""
CHUNK = 64 * 1024
BLOCK_EXPONENT = 6
"""Block2 blocks of 1024 bytes asked for (a server may answer smaller ones)."""


def no_credentials(uri: str) -> Session | None:
    """No coaps:// host has credentials (a gateway without LwM2M servers, a test)."""
    return None


def check_uri(uri: str, credentials: Credentials = no_credentials) -> Session | None:
    """Nothing (coaps://: how to open its session) once ``uri`` is a URI this gateway can
    fetch; FirmwareError otherwise."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as e:
        raise FirmwareError(UpdateResult.INVALID_URI, f"{uri!r} is not a URI: {e}") from None
    if not parts.scheme or not parts.hostname:
        raise FirmwareError(UpdateResult.INVALID_URI, f"{uri!r} is not a URI with a host")
    if parts.scheme not in SCHEMES:
        raise FirmwareError(
            UpdateResult.UNSUPPORTED_PROTOCOL,
            f"{parts.scheme}:// is not offered (only {', '.join(SCHEMES)})",
        )
    if parts.scheme != "coaps":
        return None
    session = credentials(uri)
    if session is None:
        raise FirmwareError(
            UpdateResult.INVALID_URI,
            f"{uri}: no LwM2M server is configured at {parts.netloc}, whose credentials a"
            " coaps:// package is fetched with",
        )
    return session


async def download(
    uri: str,
    dest: Path,
    max_size: int,
    timeout: float,
    credentials: Credentials = no_credentials,
    trust: Trust = (),
) -> None:
    """Fetch ``uri`` into ``dest`` (which may hold the start of it from an interrupted try),
    at most ``max_size`` bytes, within ``timeout`` seconds; a coaps:// one with the session
    ``credentials`` gives for its host, an https:// one from a server ``trust`` vouches
    for."""
    session = check_uri(uri, credentials)
    scheme = urlsplit(uri).scheme
    try:
        async with asyncio.timeout(timeout):
            if scheme in ("coap", "coaps"):
                uplink = None if session is None else await session()
                context = (
                    await aiocoap.Context.create_client_context()
                    if uplink is None
                    else uplink.context
                )
                try:
                    await _coap(uri, dest, max_size, context)
                finally:
                    with contextlib.suppress(Exception):
                        await (context.shutdown() if uplink is None else uplink.shutdown())
            else:
                stop = threading.Event()
                try:
                    await asyncio.to_thread(
                        _http, uri, dest, max_size, min(timeout, READ_TIMEOUT), trust, stop
                    )
                finally:
                    stop.set()  # cancelled: the thread stops at its next read
    except TimeoutError:
        raise FirmwareError(
            UpdateResult.CONNECTION_LOST, f"{uri}: not fetched within {timeout:g} s"
        ) from None


def _too_big(size: int, max_size: int) -> FirmwareError:
    return FirmwareError(
        UpdateResult.NOT_ENOUGH_FLASH,
        f"the package is {size} bytes or more; at most {max_size} are kept",
    )


async def _coap(uri: str, dest: Path, max_size: int, context: aiocoap.Context) -> None:
    """Fetch ``uri`` through ``context`` block by block (Block2, 1024 bytes or what the server
    picks), each written to ``dest`` as it comes: the bound holds at the first block past it,
    and a fetch cut short (a restart) goes on from the blocks ``dest`` has."""
    have = dest.stat().st_size if dest.exists() else 0
    offset = have - have % 2 ** (BLOCK_EXPONENT + 4)
    with dest.open("r+b" if dest.exists() else "wb") as out:
        out.truncate(offset)
        out.seek(offset)
        exponent = BLOCK_EXPONENT
        remote = None
        while True:
            number = offset // 2 ** (exponent + 4)
            request = aiocoap.Message(code=Code.GET, uri=uri)
            if remote is not None:
                # the last block's session: held, as aiocoap's DTLS pool forgets one that
                # nothing references (a new handshake each block), and not resolved again
                request.remote = remote
            request.opt.block2 = BlockOption.BlockwiseTuple(number, False, exponent)
            response = await _coap_response(context, request, uri)
            remote = response.remote
            block = response.opt.block2
            if block is None:  # all of it at once (a small package, or no Block2)
                out.seek(0)
                out.truncate()
            elif block.start != offset:
                raise FirmwareError(
                    UpdateResult.CONNECTION_LOST,
                    f"{uri}: block at byte {block.start} for the one at {offset}",
                )
            if out.tell() + len(response.payload) > max_size:
                raise _too_big(out.tell() + len(response.payload), max_size)
            out.write(response.payload)
            out.flush()
            if block is None or not block.more:
                return
            offset += len(response.payload)
            exponent = min(block.size_exponent, BLOCK_EXPONENT)


async def _coap_response(
    context: aiocoap.Context, request: aiocoap.Message, uri: str
) -> aiocoap.Message:
    try:
        response = await context.request(request, handle_blockwise=False).response
    except aiocoap.error.ResolutionError as e:
        raise FirmwareError(UpdateResult.INVALID_URI, f"{uri}: {e}") from None
    except aiocoap.error.Error as e:
        raise FirmwareError(UpdateResult.CONNECTION_LOST, f"{uri}: {e}") from None
    if response.code in (Code.NOT_FOUND, Code.BAD_REQUEST, Code.FORBIDDEN):
        raise FirmwareError(UpdateResult.INVALID_URI, f"{uri}: {response.code}")
    if not response.code.is_successful():
        raise FirmwareError(UpdateResult.CONNECTION_LOST, f"{uri}: {response.code}")
    return response


def _tls(trust: Trust) -> ssl.SSLContext:
    """How an https:// server is verified (module docstring): its chain and its name, against
    ``trust`` or the system's CAs."""
    if trust:
        return ssl.create_default_context(cadata=b"".join(trust))
    return ssl.create_default_context()


def _http(
    uri: str, dest: Path, max_size: int, timeout: float, trust: Trust, stop: threading.Event
) -> None:
    """The blocking http(s) fetch, resumed with Range after a break (module docstring);
    ``stop`` set, it ends at its next read and leaves ``dest`` as it is."""
    # Imported here: the http client is about 1 MB a gateway keeps for good once imported,
    # and only an http(s) package URI needs it.
    import http.client
    import urllib.error
    import urllib.request

    secure = urlsplit(uri).scheme == "https"

    class Redirects(urllib.request.HTTPRedirectHandler):
        """Followed, but from https:// only to https:// (module docstring)."""

        def redirect_request(
            self,
            req: urllib.request.Request,
            fp: IO[bytes],
            code: int,
            msg: str,
            headers: http.client.HTTPMessage,
            newurl: str,
        ) -> urllib.request.Request | None:
            if secure and urlsplit(newurl).scheme != "https":
                fp.close()
                raise FirmwareError(
                    UpdateResult.CONNECTION_LOST,
                    f"{uri}: redirected to {newurl}, which is not https://",
                )
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    # https:// is verified with ``trust`` wherever it comes in, a redirect from http:// too
    opener = urllib.request.build_opener(
        Redirects, urllib.request.HTTPSHandler(context=_tls(trust))
    )
    error: Exception | None = None
    for _ in range(HTTP_ATTEMPTS):
        if stop.is_set():
            return
        have = dest.stat().st_size if dest.exists() else 0
        request = urllib.request.Request(uri, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with opener.open(request, timeout=timeout) as response:
                resumed = response.status == 206
                length = response.headers.get("Content-Length")
                if length is not None and (have if resumed else 0) + int(length) > max_size:
                    raise _too_big((have if resumed else 0) + int(length), max_size)
                with dest.open("ab" if resumed else "wb") as out:
                    while chunk := response.read1(CHUNK):
                        if stop.is_set():
                            return
                        out.write(chunk)
                        out.flush()  # what came is kept: a restart resumes after it
                        if out.tell() > max_size:
                            raise _too_big(out.tell(), max_size)
                    if length is not None and out.tell() < (have if resumed else 0) + int(length):
                        raise http.client.IncompleteRead(b"")
            return
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # nothing after what we have: it was complete
                return
            result = UpdateResult.INVALID_URI if e.code in (400, 403, 404, 410) else None
            raise FirmwareError(
                result or UpdateResult.CONNECTION_LOST, f"{uri}: HTTP {e.code} {e.reason}"
            ) from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, OSError) and "Name or service" in str(e.reason):
                raise FirmwareError(UpdateResult.INVALID_URI, f"{uri}: {e.reason}") from None
            if isinstance(e.reason, ssl.SSLCertVerificationError):
                raise FirmwareError(
                    UpdateResult.CONNECTION_LOST,
                    f"{uri}: the server's certificate fails verification against"
                    f" {WHO_TRUSTS[bool(trust)]}: {e.reason.verify_message}",
                ) from None
            error = e
        except (OSError, http.client.HTTPException) as e:
            error = e
        log.info("firmware download %s broke (%s); resuming", uri, error)
    raise FirmwareError(UpdateResult.CONNECTION_LOST, f"{uri}: {error}")
