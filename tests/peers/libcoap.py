"""libcoap's ``coap-client`` as a test peer: a second, independent CoAP implementation.

The suite uses it to send the engine requests that no LwM2M server library exposes (FETCH, iPATCH,
any Content-Format/Accept, Block1/Block2 sizes, raw binary payloads, Observe), and to check that
the engine's CoAP is understood by something other than aiocoap. Debian package: libcoap3-bin
(``coap-client-notls``; ``coap-client-gnutls`` adds DTLS).

Reading the output: coap-client prints the payload but not the response code. At verbosity 7 it
logs every PDU it sends and receives (``v:1 t:ACK c:2.05 i:... {token} [ options ] :: payload``),
so the wrapper runs it with ``-v 7``, takes the code, options and per-message payloads from the
lines that follow "received N bytes", and takes the exact body of a plain request (reassembled
from Block2 by libcoap) from the ``-o`` file. Notification payloads come from the log: exact for
binary formats (hex dump); for text formats libcoap prints non-printable bytes as ``\\xNN``,
which is decoded back (a literal backslash-x in a text payload would be misread).

Sending from the LwM2M server's address (the plan chosen): a LwM2M client may refuse requests
that do not come from its server's address and port. ``bind=(host, port)`` makes coap-client
bind that address and port (``-a``/``-p``) *while the test's LwM2M server keeps running*.
libcoap sets SO_REUSEADDR and connects its socket to the client; when the server's socket also
has SO_REUSEADDR (node-coap, hence the lwm2m-node-lib peer, does), the bind succeeds and Linux
delivers the client's answers to the connected socket, the more specific match. The registration
stays alive and no port is released or re-bound, which would race with the client's Updates.
The cost: while coap-client runs, anything else the client sends to the server (an Update) also
lands in coap-client, so keep lifetimes long or observations short. aiocoap server sockets only
set SO_REUSEPORT, so against an aiocoap-based server the bind fails (reported as
:class:`PortInUse`) and that server must release its port first (shut its context down, send,
re-create it on the same port).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from peers.processes import wait_or_kill

DEFAULT_EXECUTABLE = "coap-client-notls"
INSTALL_COMMAND = "apt-get install libcoap3-bin"

_RECEIVED = re.compile(r"(?: |DTLS): received \d+ bytes$")  # DTLS: coap-client-openssl's log
_PDU = re.compile(
    r"^v:1 t:(?P<type>CON|NON|ACK|RST) c:(?P<code>\S+) i:[0-9a-f]+ \{(?P<token>[0-9a-f]*)\}"
    r" \[(?P<options>.*?)\](?: :: (?P<payload>.*))?$"
)
_BINARY = re.compile(r"^binary data length (?P<length>\d+)$")
_HEX_LINE = re.compile(r"^<<(?P<hex>[0-9a-f]*)>>$")
_ESCAPE = re.compile(r"\\x([0-9A-F]{2})")


class CoapClientMissing(RuntimeError):
    """coap-client is not installed; the message says how to install it."""


class CoapClientError(RuntimeError):
    """coap-client produced no response (timeout, ICMP error, bad arguments); ``log`` has why."""

    def __init__(self, message: str, log: str) -> None:
        super().__init__(f"{message}\n--- coap-client log ---\n{log}")
        self.log = log


class PortInUse(CoapClientError):
    """The bind address is held by a socket without SO_REUSEADDR; release it and try again."""


@dataclass(frozen=True)
class CoapResponse:
    """One response or notification as coap-client received it."""

    #: "2.05", "4.04", ...
    code: str
    #: Options as libcoap names and prints them, e.g. {"Content-Format": "text/plain"}; a
    #: repeated option keeps its values joined by "/" (Location-Path "rd/5").
    options: dict[str, str]
    payload: bytes

    @property
    def content_format(self) -> str | None:
        """libcoap's name for the Content-Format ("text/plain", "application/cbor", or a number)."""
        return self.options.get("Content-Format")

    @property
    def observe(self) -> int | None:
        value = self.options.get("Observe")
        return int(value) if value is not None else None


def find_coap_client(executable: str = DEFAULT_EXECUTABLE) -> str:
    """Path of the coap-client binary, or CoapClientMissing saying how to install it."""
    path = shutil.which(executable)
    if path is None:
        raise CoapClientMissing(
            f"{executable} is not installed; install it with: {INSTALL_COMMAND}"
        )
    return path


def _parse_options(text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(", "))):
        name, _, value = item.partition(":")
        options[name] = f"{options[name]}/{value}" if name in options else value
    return options


def _decode_text(shown: str) -> bytes:
    # libcoap shows text as '...' with non-printable bytes as \xNN (upper-case hex).
    inner = shown[1:-1] if len(shown) >= 2 and shown[0] == shown[-1] == "'" else shown
    out = bytearray()
    position = 0
    for escape in _ESCAPE.finditer(inner):
        out += inner[position : escape.start()].encode()
        out.append(int(escape.group(1), 16))
        position = escape.end()
    out += inner[position:].encode()
    return bytes(out)


class _LogParser:
    """Turns coap-client's verbose log, line by line, into received responses."""

    def __init__(self) -> None:
        self._incoming_next = False
        self._binary_pending: tuple[str, dict[str, str]] | None = None
        self.lines: list[str] = []

    def feed(self, line: str) -> CoapResponse | None:
        """Take one log line; return a response once one is complete."""
        self.lines.append(line)
        if self._binary_pending is not None:
            code, options = self._binary_pending
            self._binary_pending = None
            hex_line = _HEX_LINE.match(line)
            if hex_line:
                return CoapResponse(code, options, bytes.fromhex(hex_line.group("hex")))
            if line.startswith("<<"):
                # libcoap cuts the dump of a long payload (about 1 KiB) short: the response is
                # complete, its payload is not in the log. request() reads the body from its
                # -o file instead; an observation of such a payload sees it empty.
                return CoapResponse(code, options, b"")
        if _RECEIVED.search(line):
            self._incoming_next = True
            return None
        if not self._incoming_next:
            return None
        self._incoming_next = False
        pdu = _PDU.match(line)
        if pdu is None or pdu.group("code") == "0.00" or pdu.group("type") == "RST":
            return None  # empty ACK, RST, or a line that is not a PDU dump
        code, options = pdu.group("code"), _parse_options(pdu.group("options"))
        payload = pdu.group("payload")
        if payload is None:
            return CoapResponse(code, options, b"")
        if _BINARY.match(payload):
            self._binary_pending = (code, options)
            return None
        return CoapResponse(code, options, _decode_text(payload))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)


class CoapObservation:
    """A running ``coap-client -s``: notifications as they arrive, then :meth:`stop`."""

    def __init__(self, process: asyncio.subprocess.Process, parser: _LogParser) -> None:
        self._process = process
        self._parser = parser

    async def next(self, timeout: float = 5.0) -> CoapResponse:
        """The next response (the first is the registration answer), within ``timeout``."""
        assert self._process.stdout is not None
        stdout = self._process.stdout

        async def read() -> CoapResponse:
            while raw := await stdout.readline():
                response = self._parser.feed(raw.decode(errors="replace").rstrip("\n"))
                if response is not None:
                    return response
            raise CoapClientError("coap-client ended the observation", self._parser.log)

        try:
            return await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise CoapClientError(f"no notification within {timeout} s", self._parser.log) from None

    async def stop(self) -> None:
        """Interrupt coap-client (SIGINT, as a user would) and reap it."""
        if self._process.returncode is None:
            self._process.send_signal(signal.SIGINT)
            await wait_or_kill(self._process)

    @property
    def log(self) -> str:
        """The log lines read so far."""
        return self._parser.log


class CoapClient:
    """Runs coap-client requests; one process per request, like a user at a shell would."""

    def __init__(
        self,
        executable: str = DEFAULT_EXECUTABLE,
        *,
        bind: tuple[str, int] | None = None,
        timeout: float = 5.0,
        psk: tuple[str, str] | None = None,
        rpk: Path | None = None,
        certificate: tuple[Path, Path] | None = None,
    ) -> None:
        self.executable = find_coap_client(executable)
        #: Local (address, port) to send from; see the module docstring.
        self.bind = bind
        self.timeout = timeout
        #: (identity, key) for coaps:// (``-u``/``-k``; a DTLS build such as coap-client-openssl)
        self.psk = psk
        #: a raw public key's private key for coaps:// (``-M``, an EC PEM; coap-client-gnutls)
        self.rpk = rpk
        #: (certificate, key) PEM files for coaps:// (``-c``/``-j``); the server's certificate
        #: is not checked (``-n``)
        self.certificate = certificate

    def _arguments(
        self,
        method: str,
        uri: str,
        *,
        content_format: int | str | None,
        accept: int | str | None,
        payload: bytes | str | None,
        payload_file: Path | None,
        block_size: int | None,
        options: Sequence[tuple[int, str]],
        confirmable: bool,
        timeout: float,
    ) -> list[str]:
        if payload is not None and payload_file is not None:
            raise ValueError("give payload or payload_file, not both")
        arguments = [self.executable, "-v", "7", "-U", "-m", method.lower()]
        arguments += ["-B", str(max(1, math.ceil(timeout)))]
        if self.bind is not None:
            arguments += ["-a", self.bind[0], "-p", str(self.bind[1])]
        if self.psk is not None:
            arguments += ["-u", self.psk[0], "-k", self.psk[1]]
        if self.rpk is not None:
            arguments += ["-M", str(self.rpk)]
        if self.certificate is not None:
            arguments += ["-c", str(self.certificate[0]), "-j", str(self.certificate[1]), "-n"]
        if content_format is not None:
            arguments += ["-t", str(content_format)]
        if accept is not None:
            arguments += ["-A", str(accept)]
        if payload is not None:
            # -e takes percent-encoding for anything that is not plain ASCII text.
            raw = payload.encode() if isinstance(payload, str) else payload
            arguments += ["-e", "".join(_percent_encode(byte) for byte in raw)]
        if payload_file is not None:
            arguments += ["-f", str(payload_file)]
        if block_size is not None:
            arguments += ["-b", str(block_size)]
        for number, value in options:
            arguments += ["-O", f"{number},{value}"]
        if not confirmable:
            arguments.append("-N")
        return arguments

    async def request(
        self,
        method: str,
        uri: str,
        *,
        content_format: int | str | None = None,
        accept: int | str | None = None,
        payload: bytes | str | None = None,
        payload_file: Path | None = None,
        block_size: int | None = None,
        options: Sequence[tuple[int, str]] = (),
        confirmable: bool = True,
        timeout: float | None = None,
    ) -> CoapResponse:
        """Send one request; return the final response with its whole (Block2-joined) body.

        ``method``: get, put, post, delete, fetch, patch, ipatch. ``options``: extra
        (number, text) options (``-O``; text starting with 0x is hex).
        """
        limit = self.timeout if timeout is None else timeout
        with tempfile.TemporaryDirectory(prefix="coap-client-") as folder:
            body_file = Path(folder) / "body"
            arguments = self._arguments(
                method,
                uri,
                content_format=content_format,
                accept=accept,
                payload=payload,
                payload_file=payload_file,
                block_size=block_size,
                options=options,
                confirmable=confirmable,
                timeout=limit,
            )
            process = await asyncio.create_subprocess_exec(
                *arguments,
                "-o",
                str(body_file),
                uri,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            try:
                output, _ = await asyncio.wait_for(process.communicate(), limit + 5.0)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise CoapClientError(f"coap-client hung past {limit} s", "") from None
            parser = _LogParser()
            responses = [
                response
                for line in output.decode(errors="replace").splitlines()
                if (response := parser.feed(line)) is not None
            ]
            _raise_for_bind_failure(parser.log, self.bind)
            if not responses:
                raise CoapClientError(
                    f"no response to {method.upper()} {uri} (exit status {process.returncode})",
                    parser.log,
                )
            body = body_file.read_bytes() if body_file.exists() else b""
        final = responses[-1]
        return CoapResponse(final.code, final.options, body)

    @contextlib.asynccontextmanager
    async def observe(
        self,
        uri: str,
        *,
        duration: float = 30.0,
        accept: int | str | None = None,
        block_size: int | None = None,
        options: Sequence[tuple[int, str]] = (),
    ) -> AsyncIterator[CoapObservation]:
        """Observe ``uri`` (GET with Observe, ``-s duration``) until the block ends."""
        arguments = self._arguments(
            "get",
            uri,
            content_format=None,
            accept=accept,
            payload=None,
            payload_file=None,
            block_size=block_size,
            options=options,
            confirmable=True,
            timeout=duration + self.timeout,
        )
        process = await asyncio.create_subprocess_exec(
            *arguments,
            "-s",
            str(max(1, math.ceil(duration))),
            "-o",
            "/dev/null",  # payloads are read from the log, one per notification
            uri,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        observation = CoapObservation(process, _LogParser())
        try:
            yield observation
        finally:
            await observation.stop()


def _percent_encode(byte: int) -> str:
    char = chr(byte)
    if 0x20 < byte < 0x7F and char != "%":
        return char
    return f"%{byte:02X}"


def _raise_for_bind_failure(log: str, bind: tuple[str, int] | None) -> None:
    if bind is not None and "Address already in use" in log:
        raise PortInUse(
            f"cannot send from {bind[0]}:{bind[1]}: its socket lacks SO_REUSEADDR (an aiocoap "
            "server?); release the port before sending from it",
            log,
        )
