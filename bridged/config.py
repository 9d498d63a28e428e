"""The configuration file (TOML, /etc/bridged/bridged.toml) as frozen, validated values.

Everything is checked when the file is loaded, so a daemon that starts has a configuration it
can run: a wrong key or value raises ``ConfigError``, whose message names the file, the key
(dotted, ``server[0].lifetime``) and why, and an unknown key is an error with a did-you-mean
(a typo must never silently fall back to a default). Every key is documented, with its
default, in packaging/bridged.toml; a test keeps the two in step through ``KNOWN_KEYS``.

Transport sections (``[transport.<name>]``) are the one exception: their content belongs to
the transport, which validates it itself when the gateway builds it (its
``TransportConfigError`` becomes a ``ConfigError`` through ``transport_error``).
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bridged.commands import DEFAULT_TIMEOUT, DEFAULT_TTL
from bridged.delivery import DeliveryConfig
from bridged.download import Trust
from bridged.engine.bootstrap_client import BootstrapConfig
from bridged.engine.bootstrap_listener import listener_problem
from bridged.engine.client import ServerConfig, server_resource_bounds
from bridged.engine.credentials import RpkCredentials, X509Credentials
from bridged.engine.registration import RetryPolicy
from bridged.exposure.endpoints import DEFAULT_CONCURRENCY
from bridged.firmware import DEFAULT_DOWNLOAD_TIMEOUT
from bridged.firmware import DEFAULT_MAX_SIZE as DEFAULT_FIRMWARE_MAX_SIZE
from bridged.health import HealthPolicy
from bridged.objects.ids import CertificateUsage, Server
from bridged.store.readings import Bounds
from bridged.transports.nodes import NodeId

EXPOSURE_MODES = ("instances", "gateway", "endpoints")
LOG_LEVELS = ("debug", "info", "warning", "error")
VERSIONS = ("1.0", "1.1")
BINDINGS = ("U",)
DEFAULT_PATH = Path("/etc/bridged/bridged.toml")
STATE_DIR = Path("/var/lib/bridged")
RUNTIME_DIR = Path("/run/bridged")

T = TypeVar("T")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file, the key and why."""

    def __init__(self, file: Path | str, key: str, why: str) -> None:
        self.file = str(file)
        self.key = key
        self.why = why
        super().__init__(f"{file}: {key}: {why}" if key else f"{file}: {why}")


@dataclass(frozen=True, slots=True)
class GatewaySection:
    """``[gateway]``: who the gateway is and where it keeps its files."""

    endpoint: str
    exposure: str = "instances"
    state_dir: Path = STATE_DIR
    runtime_dir: Path = RUNTIME_DIR
    bind_address: str = "::"
    bind_port: int = 0
    objects_dir: Path | None = None
    endpoints_concurrency: int = DEFAULT_CONCURRENCY


@dataclass(frozen=True, slots=True)
class NodesSection:
    """``[nodes]``: how long a node has to answer, and how long a command waits for a sleepy
    one."""

    timeout: float = DEFAULT_TIMEOUT
    command_ttl: float = DEFAULT_TTL
    firmware_max_size: int = DEFAULT_FIRMWARE_MAX_SIZE
    """The largest firmware package kept for a node (bytes): /5/0/5 is 2 beyond it."""
    firmware_timeout: float = DEFAULT_DOWNLOAD_TIMEOUT
    """Seconds a package fetched from a /5/0/1 URI may take."""
    firmware_trust_store: Trust = ()
    """The CAs (DER) an https:// package's server is verified against; none: the system's."""


@dataclass(frozen=True, slots=True)
class DeliverySection:
    """``[delivery]``: how readings are batched into Sends."""

    max_records: int = DeliveryConfig().max_records
    linger: float = DeliveryConfig().linger

    @property
    def config(self) -> DeliveryConfig:
        return DeliveryConfig(max_records=self.max_records, linger=self.linger)


@dataclass(frozen=True, slots=True)
class StoreSection:
    """``[store]``: the bounds of the readings kept for store-and-forward."""

    max_readings: int = Bounds().max_count
    max_age: float = Bounds().max_age

    @property
    def bounds(self) -> Bounds:
        return Bounds(self.max_readings, self.max_age)


@dataclass(frozen=True, slots=True)
class TransportSection:
    """``[transport.<name>]``: a transport to start, and its table, handed to it unchanged."""

    name: str
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Config:
    """The whole file. ``path`` is where it was read from (error messages name it)."""

    path: Path
    gateway: GatewaySection
    servers: tuple[ServerConfig, ...] = ()
    bootstrap: BootstrapConfig | None = None
    store: StoreSection = StoreSection()
    nodes: NodesSection = NodesSection()
    delivery: DeliverySection = DeliverySection()
    health: HealthPolicy = field(default_factory=HealthPolicy)
    transports: tuple[TransportSection, ...] = ()
    log_level: str = "info"


# -- the keys, with their checks -------------------------------------------------------------

_RETRY = {
    "retry_count": "count",
    "retry_timer": "timer",
    "retry_sequence_delay": "sequence_delay",
    "retry_sequence_count": "sequence_count",
}

PSK_KEYS = ("psk_identity", "psk_key", "psk_key_file")
"""A ``[[server]]``'s (or ``[bootstrap]``'s) keys for security mode 0 (PSK)."""
X509_KEYS = ("certificate", "private_key", "server_certificate", "certificate_usage", "trust_store")
"""A ``[[server]]``'s keys for security mode 2 (certificates)."""
RPK_KEYS = ("public_key", "server_public_key")
"""A ``[[server]]``'s keys for security mode 1 (raw public keys), with ``private_key``."""
RPK_MODE, X509_MODE = "security mode 1, raw public key", "security mode 2, certificate"

KNOWN_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "gateway": (
            "endpoint",
            "exposure",
            "state_dir",
            "runtime_dir",
            "bind_address",
            "bind_port",
            "objects_dir",
            "endpoints_concurrency",
        ),
        "server": (
            "uri",
            "short_server_id",
            "lifetime",
            "binding",
            "queue",
            "queue_window",
            "version",
            "request_timeout",
            *PSK_KEYS,
            *X509_KEYS,
            *RPK_KEYS,
            "mute_send",
            "max_observations",
            *_RETRY,
        ),
        "bootstrap": (
            "uri",
            "server_initiated_port",
            "hold_off",
            "finish_timeout",
            "request_timeout",
            *PSK_KEYS,
            *X509_KEYS,
            *RPK_KEYS,
            *_RETRY,
        ),
        "store": ("max_readings", "max_age"),
        "nodes": (
            "timeout",
            "command_ttl",
            "firmware_max_size",
            "firmware_timeout",
            "firmware_trust_store",
        ),
        "health": (
            "minimum",
            "intervals",
            "unknown",
            "low_battery",
            "low_signal",
            "transport",
            "node",
        ),
        "delivery": ("max_records", "linger"),
        "log": ("level",),
        "transport": (),
    }
)
"""Every table and the keys it takes (``transport`` tables take what their transport takes)."""

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_DURATION = 366 * 86400.0
"""The longest duration any key takes (a year): more is a typo, and a timer of 8.6e24 s would
leave the daemon waiting for ever after its first failure."""
MAX_RETRY_COUNT = 32
"""Attempts per registration sequence: the wait doubles after each, so more would overflow."""


def parse_duration(value: object) -> float:
    """Seconds from a number or a text such as ``"90"``, ``"30m"``, ``"12h"`` or ``"7d"``."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.fullmatch(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration (seconds, or a number with s, m, h or d)")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{value!r} is not a positive, finite duration")
    if seconds > MAX_DURATION:
        raise ValueError(f"{value!r} is longer than {MAX_DURATION / 86400:g} days")
    return seconds


def default_endpoint(machine_id: Path = Path("/etc/machine-id")) -> str:
    """``bridged-`` and the first 8 hex digits of the machine ID (the host name without one):
    unique per machine and stable across reinstalls of the package."""
    try:
        mid = machine_id.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        mid = ""
    if re.fullmatch(r"[0-9a-f]{32}", mid):
        return f"bridged-{mid[:8]}"
    return f"bridged-{socket.gethostname().split('.')[0] or 'gateway'}"


class _Table:
    """One table of the file being read: typed getters that name the key when they refuse,
    and a check that nothing was left unread."""

    def __init__(self, file: Path, key: str, data: object, known: tuple[str, ...]) -> None:
        if not isinstance(data, dict):
            raise ConfigError(file, key, f"must be a table, not {_kind(data)}")
        self.file, self.key, self.data = file, key, data
        for name in data:
            if name not in known:
                import difflib  # only for a key that is wrong: not kept by every start

                hint = difflib.get_close_matches(name, known, n=1)
                why = "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                raise ConfigError(file, self._at(name), why)

    def _at(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def fail(self, name: str, why: str) -> ConfigError:
        return ConfigError(self.file, self._at(name), why)

    def get(self, name: str, kind: type[T], default: T) -> T:
        value = self.data.get(name, default)
        # bool is an int subclass, and TOML's true is never meant as 1.
        if isinstance(value, bool) and kind is not bool:
            raise self.fail(name, f"must be {_kind_name(kind)}, not a boolean")
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            raise self.fail(name, f"must be {_kind_name(kind)}, not {_kind(value)}")
        return value

    def required(self, name: str, kind: type[T]) -> T:
        if name not in self.data:
            raise self.fail(name, "is required")
        value = self.get(name, kind, None)
        assert value is not None
        return value

    def integer(self, name: str, default: int, low: int, high: int | None = None) -> int:
        value = self.get(name, int, default)
        if value < low or (high is not None and value > high):
            span = f"{low}..{high}" if high is not None else f">= {low}"
            raise self.fail(name, f"must be {span}, not {value}")
        return value

    def positive(self, name: str, default: float) -> float:
        if name not in self.data:
            return default
        return self.converted(name, parse_duration)

    def seconds(self, name: str, default: float, high: float) -> float:
        """A plain number of seconds, 0 up to ``high``."""
        value = self.get(name, float, default)
        if not 0 <= value <= high:
            raise self.fail(name, f"must be 0..{high:g} seconds, not {value:g}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            raise self.fail(name, f"must be one of {', '.join(map(repr, choices))}, not {value!r}")
        return value

    def converted(self, name: str, convert: Callable[[Any], T]) -> T:
        try:
            return convert(self.data[name])
        except ValueError as e:
            raise self.fail(name, str(e)) from None

    def retry(self, default: RetryPolicy) -> RetryPolicy:
        return RetryPolicy(
            count=self.integer("retry_count", default.count, 1, MAX_RETRY_COUNT),
            timer=self.positive("retry_timer", default.timer),
            sequence_delay=self.positive("retry_sequence_delay", default.sequence_delay),
            sequence_count=self.integer(
                "retry_sequence_count", default.sequence_count, 1, MAX_RETRY_COUNT
            ),
        )


def _kind_name(kind: type) -> str:
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        list: "an array",
        dict: "a table",
    }.get(kind, kind.__name__)


def _kind(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


# -- loading ---------------------------------------------------------------------------------


def load(path: Path | str = DEFAULT_PATH) -> Config:
    """Read and validate the file at ``path``; ConfigError on anything wrong."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(path, "", f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(path, "", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"not valid TOML: {e}") from None
    return parse(data, path)


def parse(
    data: Mapping[str, Any],
    path: Path,
    *,
    endpoint_default: Callable[[], str] = default_endpoint,
) -> Config:
    """Validate the TOML document ``data`` read from ``path``."""
    root = _Table(path, "", data, tuple(KNOWN_KEYS))
    servers = data.get("server", [])
    if not isinstance(servers, list):
        raise root.fail("server", "must be an array of tables ([[server]])")
    parsed = tuple(_server(path, i, s) for i, s in enumerate(servers))
    ids = [s.short_server_id for s in parsed]
    for i, ssid in enumerate(ids):
        if ssid in ids[:i]:
            raise ConfigError(
                path, f"server[{i}].short_server_id", f"{ssid} is already used by another server"
            )
    bootstrap = None
    bootstrap_table = _Table(path, "bootstrap", data.get("bootstrap", {}), KNOWN_KEYS["bootstrap"])
    if "bootstrap" in data:
        bootstrap = _bootstrap(bootstrap_table)
    if not parsed and bootstrap is None:
        raise root.fail("server", "no [[server]] and no [bootstrap]: nothing to register with")
    store = _Table(path, "store", data.get("store", {}), KNOWN_KEYS["store"])
    nodes = _Table(path, "nodes", data.get("nodes", {}), KNOWN_KEYS["nodes"])
    delivery = _Table(path, "delivery", data.get("delivery", {}), KNOWN_KEYS["delivery"])
    health = _Table(path, "health", data.get("health", {}), KNOWN_KEYS["health"])
    log = _Table(path, "log", data.get("log", {}), KNOWN_KEYS["log"])
    gateway_table = _Table(path, "gateway", data.get("gateway", {}), KNOWN_KEYS["gateway"])
    gateway = _gateway(gateway_table, endpoint_default)
    plain = [s for s in parsed if urlsplit(s.uri).scheme == "coap"]
    if gateway.bind_port != 0 and len(plain) > 1:
        # Each NoSec server has a socket of its own; one fixed port cannot serve two.
        raise gateway_table.fail(
            "bind_port", f"{len(plain)} coap:// servers cannot share the fixed port; use 0"
        )
    if bootstrap is not None and bootstrap.server_initiated_port is not None:
        problem = listener_problem(bootstrap.security_mode, gateway.bind_address)
        if bootstrap.server_initiated_port == gateway.bind_port:
            problem = "is [gateway] bind_port, the LwM2M Servers' socket; give another port"
        if problem is not None:
            raise bootstrap_table.fail("server_initiated_port", problem)
    if gateway.exposure == "endpoints" and not parsed:
        # Every node endpoint registers with the configured servers; a Bootstrap-Server
        # provisions the gateway's own endpoint only.
        raise gateway_table.fail("exposure", "the endpoints mode needs at least one [[server]]")
    return Config(
        path=path,
        gateway=gateway,
        servers=parsed,
        bootstrap=bootstrap,
        store=StoreSection(
            max_readings=store.integer("max_readings", Bounds().max_count, 1),
            max_age=store.positive("max_age", Bounds().max_age),
        ),
        nodes=NodesSection(
            timeout=nodes.positive("timeout", DEFAULT_TIMEOUT),
            command_ttl=nodes.positive("command_ttl", DEFAULT_TTL),
            firmware_max_size=nodes.integer(
                "firmware_max_size", DEFAULT_FIRMWARE_MAX_SIZE, 1, 2**31
            ),
            firmware_timeout=nodes.positive("firmware_timeout", DEFAULT_DOWNLOAD_TIMEOUT),
            firmware_trust_store=_trust_store(nodes, "firmware_trust_store"),
        ),
        delivery=DeliverySection(
            max_records=delivery.integer("max_records", DeliveryConfig().max_records, 1, 10000),
            linger=delivery.seconds("linger", DeliveryConfig().linger, 10.0),
        ),
        health=_health(health),
        transports=_transports(path, data.get("transport", {})),
        log_level=log.choice("level", "info", LOG_LEVELS),
    )


_ENDPOINT = re.compile(r"[A-Za-z0-9._~-]{1,64}")
"""What an endpoint name may be: it travels unescaped in the Register query (ep=...)."""


def _any_keys(t: _Table, name: str) -> _Table:
    """The subtable ``name`` of ``t``, whose keys are the user's (transports, node ids)."""
    data = t.data.get(name, {})
    return _Table(t.file, f"{t.key}.{name}", data, tuple(data) if isinstance(data, dict) else ())


def _health(t: _Table) -> HealthPolicy:
    """``[health]``, with its ``[health.transport]`` and ``[health.node]`` timeouts."""
    default = HealthPolicy()
    transports = _any_keys(t, "transport")
    nodes = _any_keys(t, "node")
    by_node: dict[NodeId, float] = {}
    for key in nodes.data:
        try:
            node = NodeId.parse(key)
        except ValueError as e:
            raise nodes.fail(key, str(e)) from None
        by_node[node] = nodes.converted(key, parse_duration)
    intervals = t.get("intervals", float, default.intervals)
    if not 1 <= intervals <= 1000:
        raise t.fail("intervals", f"must be 1..1000, not {intervals:g}")
    return HealthPolicy(
        minimum=t.positive("minimum", default.minimum),
        intervals=intervals,
        unknown=t.positive("unknown", default.unknown),
        low_battery=t.integer("low_battery", default.low_battery, 0, 100),
        low_signal=t.integer("low_signal", default.low_signal, -200, 0),
        transports=MappingProxyType(
            {name: transports.converted(name, parse_duration) for name in transports.data}
        ),
        nodes=MappingProxyType(by_node),
    )


def _gateway(t: _Table, endpoint_default: Callable[[], str]) -> GatewaySection:
    endpoint = t.get("endpoint", str, "") or endpoint_default()
    if not _ENDPOINT.fullmatch(endpoint):
        raise t.fail("endpoint", f"{endpoint!r} is not 1-64 letters, digits, '.', '_', '~', '-'")
    objects_dir = t.get("objects_dir", str, "")
    return GatewaySection(
        endpoint=endpoint,
        exposure=t.choice("exposure", "instances", EXPOSURE_MODES),
        state_dir=_directory(t, "state_dir", STATE_DIR, must_exist=False),
        runtime_dir=_directory(t, "runtime_dir", RUNTIME_DIR, must_exist=False),
        bind_address=t.converted("bind_address", _address) if "bind_address" in t.data else "::",
        bind_port=t.integer("bind_port", 0, 0, 65535),
        objects_dir=_directory(t, "objects_dir", Path(objects_dir), must_exist=True)
        if objects_dir
        else None,
        endpoints_concurrency=t.integer("endpoints_concurrency", DEFAULT_CONCURRENCY, 1, 1024),
    )


def _absolute(t: _Table, name: str, default: Path) -> Path:
    path = Path(t.get(name, str, str(default)))
    if not path.is_absolute():
        raise t.fail(name, f"{str(path)!r} must be an absolute path")
    return path


def _directory(t: _Table, name: str, default: Path, *, must_exist: bool) -> Path:
    """An absolute path that is a directory, or (``must_exist=False``) nothing yet: the daemon
    creates it at start."""
    path = _absolute(t, name, default)
    if path.is_dir() or (not must_exist and not path.exists()):
        return path
    if path.exists():
        raise t.fail(name, f"{str(path)!r} is not a directory")
    raise t.fail(name, f"{str(path)!r} does not exist")


def _address(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {_kind(value)}")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None
    return value


def _server(file: Path, index: int, data: object) -> ServerConfig:
    t = _Table(file, f"server[{index}]", data, KNOWN_KEYS["server"])
    uri = t.required("uri", str)
    scheme = _server_uri(t, uri, ("coap", "coaps"))
    identity, key, x509, rpk = _credentials(t, scheme)
    defaults = ServerConfig("coap://localhost")
    return ServerConfig(
        uri=uri,
        short_server_id=t.integer(
            "short_server_id", index + 1, *server_resource_bounds(Server.SSID)
        ),
        lifetime=t.integer("lifetime", defaults.lifetime, *server_resource_bounds(Server.LIFETIME)),
        binding=t.choice("binding", defaults.binding, BINDINGS),
        queue=t.get("queue", bool, defaults.queue),
        queue_window=t.positive("queue_window", defaults.queue_window),
        version=t.choice("version", defaults.version, VERSIONS),
        request_timeout=t.positive("request_timeout", defaults.request_timeout),
        retry=t.retry(defaults.retry),
        psk_identity=identity,
        psk_key=key,
        x509=x509,
        rpk=rpk,
        mute_send=t.get("mute_send", bool, defaults.mute_send),
        max_observations=t.integer("max_observations", defaults.max_observations, 0),
    )


def _credentials(
    t: _Table, scheme: str
) -> tuple[bytes | None, bytes | None, X509Credentials | None, RpkCredentials | None]:
    """A server's (or the Bootstrap-Server's) DTLS credentials: a PSK (identity, key), a
    certificate, a raw public key, or for coap:// none of them; each refusal names the key."""
    identity = t.get("psk_identity", str, "")
    key = _psk_key(t)
    rpk = _rpk(t)
    x509 = _x509(t) if rpk is None else None
    if (x509 is not None or rpk is not None) and (identity or key):
        given = "certificate" if x509 is not None else "public_key"
        raise t.fail(given, "give one of a PSK, a raw public key or a certificate, not both")
    if scheme == "coaps" and x509 is None and rpk is None and not (identity and key):
        raise t.fail(
            "psk_identity" if not identity else "psk_key",
            "coaps:// needs a PSK (psk_identity, and psk_key or psk_key_file),"
            " a raw public key (public_key, private_key, server_public_key)"
            " or a certificate (certificate, private_key, server_certificate)",
        )
    if scheme == "coap" and (identity or key or x509 is not None or rpk is not None):
        raise t.fail(
            "uri", "a PSK, raw public key or certificate needs a coaps:// URI; coap:// is NoSec"
        )
    return identity.encode() if identity else None, key, x509, rpk


def _required(t: _Table, keys: tuple[str, ...], required: tuple[str, ...], mode: str) -> bool:
    """Whether any of a security ``mode``'s ``keys`` is given; if so, each of ``required`` must
    be, or the refusal names the missing one."""
    given = [k for k in keys if k in t.data]
    for name in required if given else ():
        if name not in t.data:
            raise t.fail(name, f"is required with {given[0]} ({mode})")
    return bool(given)


def _rpk(t: _Table) -> RpkCredentials | None:
    """Security mode 1 from ``public_key`` (the gateway's, SubjectPublicKeyInfo), ``private_key``
    (0600/0640) and ``server_public_key`` (PEM or DER files, P-256); None without them."""
    if not _required(t, RPK_KEYS, ("public_key", "private_key", "server_public_key"), RPK_MODE):
        return None
    for name in X509_KEYS:
        if name in t.data and name != "private_key":
            raise t.fail(name, "give a raw public key or a certificate, not both")
    # Imported here, as for certificates (``_x509``): only a mode 1 account needs cryptography.
    from bridged.engine import tinydtls
    from bridged.engine.dtls_x509 import load_private_key, load_public_key

    public = {}
    for name in RPK_KEYS:
        try:
            public[name] = load_public_key(_file(t, name))
        except ValueError as e:
            raise t.fail(name, str(e)) from None
    try:
        private = load_private_key(_file(t, "private_key", secret=True))
        credentials = RpkCredentials(public["public_key"], private, public["server_public_key"])
    except ValueError as e:
        raise t.fail("private_key", str(e)) from None
    try:
        tinydtls.library()  # refused now, not at the first handshake
    except tinydtls.TinyDtlsUnavailable as e:
        raise t.fail("public_key", f"raw public keys cannot be used here: {e}") from None
    return credentials


def _server_uri(t: _Table, uri: str, schemes: tuple[str, ...], note: str = "") -> str:
    """Check ``uri`` is ``scheme://host[:port]`` with a port of 1-65535 and nothing else (no
    user, path, query or fragment: a server URI that the registrar could never reach); returns
    its scheme."""
    shape = " or ".join(f"{s}://host[:port]" for s in schemes) + note
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as e:
        raise t.fail("uri", f"{uri!r} is not a URI ({e}); it must be {shape}") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise t.fail("uri", f"{uri!r} must be {shape}")
    if parts.username is not None or parts.password is not None:
        raise t.fail("uri", f"{uri!r} must be {shape}, without a user name or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise t.fail("uri", f"{uri!r} must be {shape}, without a path, query or fragment")
    if port == 0:
        raise t.fail("uri", f"{uri!r}: port 0 is not a server port (1-65535)")
    return parts.scheme


def _psk_key(t: _Table) -> bytes | None:
    """The PSK from ``psk_key`` (hex) or ``psk_key_file`` (a file holding the hex), which
    keeps the key out of a world-readable configuration. Messages never show the key."""
    if "psk_key" in t.data and "psk_key_file" in t.data:
        raise t.fail("psk_key_file", "give psk_key or psk_key_file, not both")
    if "psk_key" in t.data:
        name, text = "psk_key", t.get("psk_key", str, "")
    elif "psk_key_file" in t.data:
        name = "psk_key_file"
        try:
            text = _file(t, name, secret=True).decode("ascii").strip()
        except UnicodeDecodeError:
            raise t.fail(name, "the key is not hexadecimal") from None
    else:
        return None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise t.fail(name, "the key is not hexadecimal") from None
    if not key:
        raise t.fail(name, "the key is empty")
    return key


SECRET_MODE_MASK = stat.S_IWGRP | stat.S_IRWXO
"""What a file holding a key must not allow: group write, or anything for others (0600 and
0640 root:bridged pass)."""


def _file(t: _Table, name: str, *, secret: bool = False) -> bytes:
    """The bytes of the file key ``name`` names (an absolute path); a ``secret`` one (a key)
    must be 0600 or 0640, or the configuration is refused (the key could have been read).
    Messages never show the content."""
    file = _absolute(t, name, Path("/"))
    try:
        mode = file.stat().st_mode
        data = file.read_bytes()
    except OSError as e:
        raise t.fail(name, f"cannot read {file}: {e.strerror or e}") from None
    if secret and mode & SECRET_MODE_MASK:
        raise t.fail(
            name,
            f"{file} is mode {stat.S_IMODE(mode):04o}: a key file must be 0600 or 0640"
            " (not writable by its group, nothing for others)",
        )
    return data


def _trust_store(t: _Table, name: str) -> tuple[bytes, ...]:
    """The CA certificates (DER) of the PEM bundle or DER file key ``name`` names; none
    without it."""
    if name not in t.data:
        return ()
    # Imported here, as for certificates (``_x509``).
    from cryptography.hazmat.primitives.serialization import Encoding

    from bridged.engine.dtls_x509 import load_certificates

    data = _file(t, name)
    try:
        return tuple(c.public_bytes(Encoding.DER) for c in load_certificates(data))
    except ValueError:
        raise t.fail(name, "not X.509 certificates in PEM or DER") from None


def _x509(t: _Table) -> X509Credentials | None:
    """Security mode 2 from ``certificate``, ``private_key`` (0600/0640), ``server_certificate``
    (PEM or DER files), ``certificate_usage`` (/0/x/15, 0-3, default 3) and ``trust_store`` (a
    PEM bundle of CAs, which usages 0 and 1 validate against); None without ``certificate``."""
    if not _required(t, X509_KEYS, ("certificate", "private_key", "server_certificate"), X509_MODE):
        return None
    # Imported here: cryptography is a large part of a start's memory, and only a
    # configuration with certificates needs it.
    from cryptography.hazmat.primitives.serialization import Encoding

    from bridged.engine.dtls_x509 import load_certificate, load_private_key

    usage = t.integer(
        "certificate_usage",
        CertificateUsage.DOMAIN_ISSUED_CERTIFICATE,
        CertificateUsage.CA_CONSTRAINT,
        CertificateUsage.DOMAIN_ISSUED_CERTIFICATE,
    )
    certificates = {}
    for name in ("certificate", "server_certificate"):
        data = _file(t, name)
        try:
            certificates[name] = load_certificate(data).public_bytes(Encoding.DER)
        except ValueError:
            raise t.fail(name, "not an X.509 certificate in PEM or DER") from None
    data = _file(t, "private_key", secret=True)
    try:
        key = load_private_key(data)
    except ValueError as e:
        raise t.fail("private_key", str(e)) from None
    trust = _trust_store(t, "trust_store")
    validated = (CertificateUsage.CA_CONSTRAINT, CertificateUsage.SERVICE_CERTIFICATE_CONSTRAINT)
    if usage in validated and not trust:
        raise t.fail("trust_store", f"is required with certificate_usage {usage}")
    return X509Credentials(
        certificate=certificates["certificate"],
        private_key=key,
        server_certificate=certificates["server_certificate"],
        usage=usage,
        trust_store=trust,
    )


def _bootstrap(t: _Table) -> BootstrapConfig:
    uri = t.required("uri", str)
    identity, key, x509, rpk = _credentials(t, _server_uri(t, uri, ("coap", "coaps")))
    defaults = BootstrapConfig(uri)
    return BootstrapConfig(
        uri=uri,
        psk_identity=identity,
        psk_key=key,
        x509=x509,
        rpk=rpk,
        hold_off=t.integer("hold_off", defaults.hold_off, 0),
        server_initiated_port=(
            t.integer("server_initiated_port", 0, 1, 65535)
            if "server_initiated_port" in t.data
            else None
        ),
        finish_timeout=t.positive("finish_timeout", defaults.finish_timeout),
        request_timeout=t.positive("request_timeout", defaults.request_timeout),
        retry=t.retry(defaults.retry),
    )


_TRANSPORT_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")  # 802154 starts with a digit


def _transports(file: Path, data: object) -> tuple[TransportSection, ...]:
    if not isinstance(data, dict):
        raise ConfigError(file, "transport", f"must be a table, not {_kind(data)}")
    out = []
    for name, options in data.items():
        if not _TRANSPORT_NAME.fullmatch(name):
            raise ConfigError(file, f"transport.{name}", "is not a transport name")
        if not isinstance(options, dict):
            raise ConfigError(file, f"transport.{name}", f"must be a table, not {_kind(options)}")
        out.append(TransportSection(name, MappingProxyType(dict(options))))
    return tuple(out)


def transport_error(config: Config, name: str, error: Exception) -> ConfigError:
    """A transport's refusal of its table (``TransportConfigError``, or no such transport
    installed), as a ConfigError on ``transport.<name>``."""
    return ConfigError(config.path, f"transport.{name}", str(error))
