"""The configuration loader: defaults, every refusal naming file + key + why, and the
annotated example (packaging/bridged.toml) documenting exactly the keys the loader knows."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from bridged.config import (
    KNOWN_KEYS,
    RPK_KEYS,
    X509_KEYS,
    ConfigError,
    NodesSection,
    default_endpoint,
    load,
    parse,
    parse_duration,
)
from bridged.daemon import EXIT_CONFIG, main
from bridged.delivery import DeliveryConfig
from bridged.engine import tinydtls
from bridged.engine.client import ServerConfig
from bridged.engine.dtls_x509 import load_certificate, load_public_key
from bridged.engine.observe import MAX_OBSERVATIONS
from bridged.objects.ids import CertificateUsage, SecurityMode
from bridged.store.readings import Bounds
from peers.pki import Pki

EXAMPLE = Path(__file__).parents[2] / "packaging" / "bridged.toml"
FILE = Path("/etc/bridged/bridged.toml")
SERVER = {"uri": "coap://127.0.0.1:5683"}


def config(**tables: Any) -> Any:
    data: dict[str, Any] = {"server": [dict(SERVER)], **tables}
    return parse(data, FILE, endpoint_default=lambda: "bridged-test")


def refusal(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(data, FILE, endpoint_default=lambda: "bridged-test")
    return info.value


def test_defaults() -> None:
    c = config()
    assert c.gateway.endpoint == "bridged-test"
    assert c.gateway.exposure == "instances"
    assert c.gateway.state_dir == Path("/var/lib/bridged")
    assert c.gateway.runtime_dir == Path("/run/bridged")
    assert (c.gateway.bind_address, c.gateway.bind_port) == ("::", 0)
    assert c.servers == (ServerConfig("coap://127.0.0.1:5683"),)
    assert c.bootstrap is None
    assert c.store.bounds == Bounds()
    assert c.nodes == NodesSection(timeout=10.0, command_ttl=86400.0)
    assert c.delivery.config == DeliveryConfig()
    assert c.gateway.endpoints_concurrency == 32
    assert c.transports == ()
    assert c.log_level == "info"


def test_a_full_configuration() -> None:
    c = config(
        gateway={"endpoint": "gw-1", "exposure": "gateway", "bind_address": "127.0.0.1"},
        server=[
            {**SERVER, "lifetime": 60, "queue": True, "version": "1.0", "retry_timer": "2m"},
            {
                "uri": "coaps://lwm2m.example:5684",
                "psk_identity": "gw-1",
                "psk_key": "00112233",
                "short_server_id": 7,
            },
        ],
        bootstrap={"uri": "coap://bs.example:5783", "hold_off": 3},
        store={"max_readings": 10, "max_age": "12h"},
        nodes={"timeout": 2.5, "command_ttl": "2h"},
        delivery={"max_records": 64, "linger": 0},
        transport={"sim": {"nodes": 2}},
        log={"level": "debug"},
    )
    first, second = c.servers
    assert (first.short_server_id, first.lifetime, first.queue, first.version) == (
        1,
        60,
        True,
        "1.0",
    )
    assert first.retry.timer == 120.0
    assert second.psk_identity == b"gw-1" and second.psk_key == bytes.fromhex("00112233")
    assert second.security_mode == 0 and second.short_server_id == 7
    assert c.bootstrap is not None and c.bootstrap.hold_off == 3
    assert c.store.bounds == Bounds(10, 43200.0)
    assert c.nodes == NodesSection(timeout=2.5, command_ttl=7200.0)
    assert c.delivery.config == DeliveryConfig(max_records=64, linger=0.0)
    assert [(t.name, dict(t.options)) for t in c.transports] == [("sim", {"nodes": 2})]
    assert c.log_level == "debug"


def test_the_psk_may_come_from_a_file(tmp_path: Path) -> None:
    key = tmp_path / "server.key"
    key.write_text("a1b2c3\n")
    key.chmod(0o640)
    server = {"uri": "coaps://h", "psk_identity": "me", "psk_key_file": str(key)}
    assert config(server=[server]).servers[0].psk_key == bytes.fromhex("a1b2c3")


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660, 0o666])
def test_a_key_file_others_could_read_or_change_is_refused(tmp_path: Path, mode: int) -> None:
    """A PSK or private key file must be 0600 or 0640: the key may already be known."""
    key = tmp_path / "server.key"
    key.write_text("a1b2c3\n")
    key.chmod(mode)
    server = {"uri": "coaps://h", "psk_identity": "me", "psk_key_file": str(key)}
    e = refusal({"server": [server]})
    assert e.key == "server[0].psk_key_file" and f"mode {mode:04o}" in str(e)
    assert "a1b2c3" not in str(e)


def certificate_server(tmp_path: Path, **keys: Any) -> dict[str, Any]:
    """A coaps:// [[server]] with a certificate from a test CA, its files in ``tmp_path``."""
    pki = Pki()
    cert, key = pki.issue("bridged-test").write(tmp_path, "client")
    server = tmp_path / "server.pem"
    server.write_bytes(pki.issue("server", server_host="127.0.0.1").pem)
    (tmp_path / "ca.pem").write_bytes(pki.ca.pem)
    return {
        "uri": "coaps://127.0.0.1",
        "certificate": str(cert),
        "private_key": str(key),
        "server_certificate": str(server),
        **keys,
    }


def test_a_certificate_server(tmp_path: Path) -> None:
    """PEM files become /0's DER forms; the usage defaults to 3 (domain-issued), the key is
    never in the repr."""
    c = config(server=[certificate_server(tmp_path)])
    s = c.servers[0]
    assert s.security_mode == SecurityMode.CERTIFICATE and s.x509 is not None
    assert s.x509.usage == CertificateUsage.DOMAIN_ISSUED_CERTIFICATE
    assert s.x509.certificate == load_certificate(
        (tmp_path / "client.pem").read_bytes()
    ).public_bytes(Encoding.DER)
    assert s.x509.private_key.hex() not in repr(s)


def test_a_firmware_trust_store(tmp_path: Path) -> None:
    """``[nodes] firmware_trust_store``: the CAs of a PEM bundle, as DER, which an https://
    package's server is verified against; without it, none (the system's)."""
    first, second = Pki("first"), Pki("second")
    store = tmp_path / "firmware-ca.pem"
    store.write_bytes(first.ca.pem + second.ca.pem)
    c = config(nodes={"firmware_trust_store": str(store)})
    assert c.nodes.firmware_trust_store == (first.ca.der, second.ca.der)
    assert config().nodes.firmware_trust_store == ()


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("firmware-ca.pem", "must be an absolute path"),
        ("MISSING", "cannot read"),
        ("NOT_A_CERTIFICATE", "not X.509 certificates in PEM or DER"),
    ],
)
def test_firmware_trust_store_refusals(tmp_path: Path, value: str, why: str) -> None:
    (tmp_path / "key.pem").write_bytes(Pki().ca.key_pem())
    files = {"MISSING": str(tmp_path / "none.pem"), "NOT_A_CERTIFICATE": str(tmp_path / "key.pem")}
    e = refusal({"server": [SERVER], "nodes": {"firmware_trust_store": files.get(value, value)}})
    assert e.key == "nodes.firmware_trust_store" and why in str(e), str(e)


def rpk_server(tmp_path: Path, **keys: Any) -> dict[str, Any]:
    """A coaps:// [[server]] (or [bootstrap]) with a raw public key, its files in ``tmp_path``
    (the key 0600)."""
    pki = Pki()
    public, key = pki.issue("bridged-test").write_rpk(tmp_path, "client")
    server, _ = pki.issue("server").write_rpk(tmp_path / "server", "server")
    return {
        "uri": "coaps://127.0.0.1",
        "public_key": str(public),
        "private_key": str(key),
        "server_public_key": str(server),
        **keys,
    }


@pytest.mark.parametrize("table", ["server", "bootstrap"])
def test_a_raw_public_key_server(tmp_path: Path, table: str) -> None:
    """Security mode 1 for a server or the Bootstrap-Server: PEM files become /0's DER forms,
    the private key is never in the repr."""
    entry = rpk_server(tmp_path)
    data: dict[str, Any] = {"server": [entry]} if table == "server" else {"bootstrap": entry}
    c = parse(data, FILE, endpoint_default=lambda: "bridged-test")
    account = c.servers[0] if table == "server" else c.bootstrap
    assert account.security_mode == SecurityMode.RPK and account.rpk is not None
    assert account.rpk.public_key == load_public_key((tmp_path / "client.pub").read_bytes())
    assert account.rpk.server_public_key == load_public_key(
        (tmp_path / "server" / "server.pub").read_bytes()
    )
    assert account.rpk.private_key.hex() not in repr(c)


@pytest.mark.parametrize("account", [rpk_server, certificate_server])
def test_a_dtls_bootstrap_server_is_listened_for_on_one_address(
    tmp_path: Path, account: Callable[..., dict[str, Any]]
) -> None:
    """Raw public keys and certificates: the gateway is the DTLS server, bound to one address
    (aiocoap's DTLS server socket, and a reply from the address it was reached on)."""
    entry = account(tmp_path, server_initiated_port=5693)
    error = refusal({"bootstrap": entry})
    assert error.key == "bootstrap.server_initiated_port"
    assert "bind_address set to one address" in error.why
    c = parse(
        {"bootstrap": entry, "gateway": {"bind_address": "127.0.0.1"}},
        FILE,
        endpoint_default=lambda: "bridged-test",
    )
    assert c.bootstrap is not None and c.bootstrap.server_initiated_port == 5693


def test_a_psk_bootstrap_server_is_listened_for_on_one_address() -> None:
    c = config(
        bootstrap={
            "uri": "coaps://h",
            "psk_identity": "gw",
            "psk_key": "00",
            "server_initiated_port": 5693,
        },
        gateway={"bind_address": "127.0.0.1"},
    )
    assert c.bootstrap is not None and c.bootstrap.server_initiated_port == 5693


@pytest.mark.parametrize(
    ("change", "key", "why"),
    [
        ({"server_public_key": None}, "server_public_key", "is required with public_key"),
        ({"certificate": "/etc/x.pem"}, "certificate", "a raw public key or a certificate"),
        ({"psk_identity": "me", "psk_key": "00"}, "public_key", "not both"),
        ({"uri": "coap://127.0.0.1"}, "uri", "coap:// is NoSec"),
        ({"public_key": "OTHER"}, "private_key", "/0/x/3) is not its private key's"),
        ({"server_public_key": "NOT-A-KEY"}, "server_public_key", "not a public key"),
    ],
)
def test_raw_public_key_refusals(
    tmp_path: Path, change: dict[str, Any], key: str, why: str
) -> None:
    """Each way a raw public key account is incomplete or mixed with another mode: refused,
    naming the key, never run in another mode."""
    entry = rpk_server(tmp_path)
    other, _ = Pki().issue("other").write_rpk(tmp_path / "other", "other")
    (tmp_path / "junk.pub").write_bytes(b"junk")
    files = {"OTHER": str(other), "NOT-A-KEY": str(tmp_path / "junk.pub")}
    for name, value in change.items():
        if value is None:
            del entry[name]
        else:
            entry[name] = files.get(value, value)
    e = refusal({"server": [entry]})
    assert e.key == f"server[0].{key}" and why in str(e), str(e)


def test_raw_public_keys_without_a_usable_tinydtls_are_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DTLSSocket whose tinydtls the binding does not know: the configuration is refused
    with the reason, not the first handshake."""
    monkeypatch.setattr(tinydtls, "KNOWN_VERSIONS", frozenset({b"0.0.0"}))
    tinydtls.library.cache_clear()
    try:
        e = refusal({"server": [rpk_server(tmp_path)]})
    finally:
        monkeypatch.undo()
        tinydtls.library.cache_clear()
    assert e.key == "server[0].public_key" and "cannot be used here" in str(e), str(e)


def test_a_raw_public_key_private_key_others_could_read_is_refused(tmp_path: Path) -> None:
    entry = rpk_server(tmp_path)
    Path(entry["private_key"]).chmod(0o644)
    e = refusal({"server": [entry]})
    assert e.key == "server[0].private_key" and "mode 0644" in str(e)


@pytest.mark.parametrize(
    ("keys", "key", "why"),
    [
        ({"private_key": None}, "server[0].private_key", "is required with certificate"),
        ({"certificate_usage": 4}, "server[0].certificate_usage", "must be 0..3"),
        ({"certificate_usage": 1}, "server[0].trust_store", "is required with certificate_usage 1"),
        ({"psk_identity": "me", "psk_key": "00"}, "server[0].certificate", "not both"),
        ({"uri": "coap://127.0.0.1"}, "server[0].uri", "needs a coaps:// URI"),
        ({"certificate": "SERVER_KEY"}, "server[0].certificate", "not an X.509 certificate"),
        ({"private_key": "CLIENT_PEM"}, "server[0].private_key", "not an unencrypted private key"),
        ({"trust_store": "CLIENT_KEY"}, "server[0].trust_store", "not X.509 certificates"),
    ],
)
def test_certificate_refusals(tmp_path: Path, keys: dict[str, Any], key: str, why: str) -> None:
    server = certificate_server(tmp_path)
    (tmp_path / "client.pem").chmod(0o600)  # so that its content is what is refused
    files = {
        "SERVER_KEY": str(tmp_path / "client.key"),
        "CLIENT_PEM": str(tmp_path / "client.pem"),
        "CLIENT_KEY": str(tmp_path / "client.key"),
    }
    for name, value in keys.items():
        if value is None:
            del server[name]
        else:
            server[name] = files.get(value, value) if isinstance(value, str) else value
    e = refusal({"server": [server]})
    assert e.key == key and why in str(e), str(e)
    assert "PRIVATE KEY" not in str(e)


@pytest.mark.parametrize(
    ("data", "key", "why"),
    [
        ({"server": [{**SERVER, "lifetme": 3}]}, "server[0].lifetme", "did you mean 'lifetime'"),
        ({"server": [{**SERVER, "lifetime": "x"}]}, "server[0].lifetime", "must be an integer"),
        ({"server": [{**SERVER, "lifetime": 0}]}, "server[0].lifetime", "must be 1..2147483647"),
        ({"server": [{**SERVER, "lifetime": -101}]}, "server[0].lifetime", "not -101"),
        ({"server": [{**SERVER, "lifetime": 2**31}]}, "server[0].lifetime", "not 2147483648"),
        ({"server": [{**SERVER, "queue": 1}]}, "server[0].queue", "true or false"),
        ({"server": [{**SERVER, "lifetime": True}]}, "server[0].lifetime", "not a boolean"),
        ({"server": [{"lifetime": 3}]}, "server[0].uri", "is required"),
        ({"server": [{"uri": "http://h"}]}, "server[0].uri", "coap://"),
        ({"server": [{"uri": "coaps://h"}]}, "server[0].psk_identity", "needs a PSK"),
        (
            {"server": [{"uri": "coap://h", "psk_identity": "a", "psk_key": "00"}]},
            "server[0].uri",
            "coaps://",
        ),
        (
            {"server": [{"uri": "coaps://h", "psk_identity": "a", "psk_key": "zz"}]},
            "server[0].psk_key",
            "not hexadecimal",
        ),
        (
            {"server": [{"uri": "coaps://h", "psk_identity": "a", "psk_key_file": "/nonexistent"}]},
            "server[0].psk_key_file",
            "cannot read",
        ),
        ({"server": [{**SERVER, "version": "1.2"}]}, "server[0].version", "one of '1.0', '1.1'"),
        ({"server": [{**SERVER, "retry_timer": "soon"}]}, "server[0].retry_timer", "duration"),
        (
            {"server": [{**SERVER}, {"uri": "coap://other", "short_server_id": 1}]},
            "server[1].short_server_id",
            "already used",
        ),
        ({"server": {"uri": "coap://h"}}, "server", "array of tables"),
        ({}, "server", "nothing to register with"),
        ({"server": [SERVER], "gatway": {}}, "gatway", "did you mean 'gateway'"),
        ({"server": [SERVER], "gateway": {"exposure": "x"}}, "gateway.exposure", "one of"),
        ({"server": [SERVER], "gateway": {"endpoint": "a b"}}, "gateway.endpoint", "letters"),
        ({"server": [SERVER], "gateway": {"state_dir": "var"}}, "gateway.state_dir", "absolute"),
        ({"server": [SERVER], "gateway": {"bind_address": "x"}}, "gateway.bind_address", "IPv4"),
        ({"server": [SERVER], "gateway": {"bind_port": 70000}}, "gateway.bind_port", "0..65535"),
        ({"server": [SERVER], "gateway": 3}, "gateway", "must be a table"),
        ({"server": [SERVER], "store": {"max_age": "3w"}}, "store.max_age", "not a duration"),
        ({"server": [SERVER], "store": {"max_readings": 0}}, "store.max_readings", ">= 1"),
        ({"server": [SERVER], "log": {"level": "loud"}}, "log.level", "one of"),
        ({"server": [SERVER], "transport": {"sim": 3}}, "transport.sim", "must be a table"),
        ({"server": [SERVER], "transport": {"Sim!": {}}}, "transport.Sim!", "transport name"),
        ({"bootstrap": {"uri": "coaps://h"}}, "bootstrap.psk_identity", "needs a PSK"),
        (
            {"bootstrap": {"uri": "coap://h"}, "gateway": {"exposure": "endpoints"}},
            "gateway.exposure",
            "needs at least one [[server]]",
        ),
        (
            {"server": [SERVER], "gateway": {"endpoints_concurrency": 0}},
            "gateway.endpoints_concurrency",
            "1..1024",
        ),
        ({"server": [SERVER], "nodes": {"timeout": 0}}, "nodes.timeout", "positive"),
        ({"server": [SERVER], "nodes": {"command_ttl": "x"}}, "nodes.command_ttl", "duration"),
        ({"server": [SERVER], "nodes": {"comand_ttl": 3}}, "nodes.comand_ttl", "did you mean"),
        ({"server": [SERVER], "delivery": {"max_records": 0}}, "delivery.max_records", "1..10000"),
        ({"server": [SERVER], "delivery": {"linger": -1}}, "delivery.linger", "0..10 seconds"),
        ({"server": [SERVER], "delivery": {"linger": "1s"}}, "delivery.linger", "a number"),
        ({"bootstrap": {"uri": "coap://h", "hold_off": -1}}, "bootstrap.hold_off", ">= 0"),
        (
            {"bootstrap": {"uri": "coap://h", "server_initiated_port": 0}},
            "bootstrap.server_initiated_port",
            "1..65535",
        ),
        (
            {
                "bootstrap": {"uri": "coap://h", "server_initiated_port": 5683},
                "gateway": {"bind_port": 5683},
            },
            "bootstrap.server_initiated_port",
            "is [gateway] bind_port",
        ),
        (
            {
                "bootstrap": {
                    "uri": "coaps://h",
                    "psk_identity": "gw",
                    "psk_key": "00",
                    "server_initiated_port": 5693,
                }
            },
            "bootstrap.server_initiated_port",
            "needs [gateway] bind_address set to one address",
        ),
    ],
)
def test_every_refusal_names_file_key_and_why(data: dict[str, Any], key: str, why: str) -> None:
    error = refusal(data)
    assert error.key == key
    assert why in error.why
    assert str(error).startswith(f"{FILE}: {key}: ")


def test_every_transport_entry_point_names_a_valid_table() -> None:
    """``[transport.802154]`` and the others: each installed transport can be configured."""
    names = [ep.name for ep in entry_points(group="bridged.transports")]
    assert "802154" in names
    c = config(transport={name: {} for name in names})
    assert [s.name for s in c.transports] == names


def test_a_psk_never_appears_in_a_message() -> None:
    error = refusal({"server": [{"uri": "coaps://h", "psk_identity": "a", "psk_key": "s3cr3t"}]})
    assert "s3cr3t" not in str(error)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML: .*line 1"):
        load(bad)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(90, 90.0), (1.5, 1.5), ("90", 90.0), ("30s", 30.0), ("30m", 1800.0), ("12h", 43200.0),
     ("7d", 604800.0), (" 2.5h ", 9000.0)],
)  # fmt: skip
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@given(st.one_of(st.text(), st.integers(), st.floats(), st.booleans(), st.none()))
def test_a_duration_is_positive_seconds_or_a_value_error(value: object) -> None:
    try:
        seconds = parse_duration(value)
    except ValueError:
        return
    assert seconds > 0


def test_default_endpoint_comes_from_the_machine_id(tmp_path: Path) -> None:
    mid = tmp_path / "machine-id"
    mid.write_text("3d1219c7a4b54e6f9d2a0b1c2d3e4f50\n")
    assert default_endpoint(mid) == "bridged-3d1219c7"
    assert default_endpoint(tmp_path / "none").startswith("bridged-")


# -- the annotated example -------------------------------------------------------------------


def documented_keys() -> dict[str, set[str]]:
    """The keys of each table of the example, set or commented out (``# key = value``)."""
    tables: dict[str, set[str]] = {}
    current = ""
    for line in EXAMPLE.read_text().splitlines():
        header = re.fullmatch(r"#?\s*\[\[?([a-z_.]+)\]\]?.*", line.strip())
        if header:
            current = header.group(1).split(".")[0]
            tables.setdefault(current, set())
            continue
        key = re.fullmatch(r"#?\s*([a-z_]+)\s*=.*", line.strip())
        if key and current:
            tables[current].add(key.group(1))
    return tables


def test_the_example_documents_exactly_the_known_keys() -> None:
    documented = documented_keys()
    assert set(documented) == set(KNOWN_KEYS)
    for table, keys in KNOWN_KEYS.items():
        if table == "transport":
            continue  # the transports document their own keys
        assert documented[table] == set(keys), table


def test_the_example_loads() -> None:
    c = load(EXAMPLE)
    assert c.servers and c.gateway.exposure == "instances"


def test_the_defaults_in_the_example_are_the_loaders() -> None:
    """Uncommenting every documented default changes nothing."""
    skip = {
        "endpoint",
        "objects_dir",
        "psk_identity",
        "psk_key",
        "psk_key_file",
        "uri",
        "firmware_trust_store",
        *X509_KEYS,
        *RPK_KEYS,
    }
    lines = []
    table = ""
    for line in EXAMPLE.read_text().splitlines():
        stripped = line.strip()
        header = re.fullmatch(r"#?\s*(\[\[?[a-z_.]+\]\]?).*", stripped)
        if header:
            table = header[1]
        m = re.fullmatch(r"# ([a-z_]+) = (.*)", stripped)
        tables = ("[gateway]", "[[server]]", "[store]", "[nodes]", "[delivery]", "[log]")
        if m and table in tables and m[1] not in skip:
            lines.append(f"{m[1]} = {m[2]}")
        else:
            lines.append(line)
    uncommented = tomllib.loads("\n".join(lines))
    commented = tomllib.loads(EXAMPLE.read_text())
    assert uncommented != commented
    assert parse(uncommented, FILE) == parse(commented, FILE)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("[transport.sim]\nnodes = -1", "transport.sim"),
        ('[transport.802154]\nport = "/dev/ttyACM0"\nchanel = 20', "802154.chanel"),
        ("[transport.ble]\nadapter = 7", "ble.adapter"),
    ],
)
def test_check_refuses_what_the_daemon_would_refuse_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, key: str
) -> None:
    """``bridged --check`` builds (without starting) every configured transport, which
    checks its own table: a typo there fails the check, not the next start."""
    path = tmp_path / "bridged.toml"
    path.write_text(f'[[server]]\nuri = "coap://127.0.0.1"\n\n{table}\n')
    assert main(["--config", str(path), "--check"]) == EXIT_CONFIG
    message = capsys.readouterr().err
    assert str(path) in message and key in message
    path.write_text('[[server]]\nuri = "coap://127.0.0.1"\n\n[transport.sim]\nnodes = 2\n')
    assert main(["--config", str(path), "--check"]) == 0


@pytest.mark.parametrize("lifetime", [-101, 0, 2**31])
def test_check_refuses_a_lifetime_a_server_could_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lifetime: int
) -> None:
    """The configuration takes /1/x/1 within the bounds a server's Write has (issue 13)."""
    path = tmp_path / "bridged.toml"
    path.write_text(f'[[server]]\nuri = "coap://127.0.0.1"\nlifetime = {lifetime}\n')
    assert main(["--config", str(path), "--check"]) == EXIT_CONFIG
    assert "server[0].lifetime: must be 1..2147483647" in capsys.readouterr().err


def test_the_examples_transport_tables_pass_their_transports_checks(tmp_path: Path) -> None:
    """The commented ``[transport.*]`` tables at the end of the example are what a user
    uncomments: each must be a table its transport accepts."""
    lines = EXAMPLE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# [transport."))
    tables = "\n".join(line.removeprefix("#").removeprefix(" ") for line in lines[start:])
    assert {"[transport.sim]", "[transport.ble]", "[transport.802154]"} <= set(tables.split())
    path = tmp_path / "bridged.toml"
    path.write_text(f'[[server]]\nuri = "coap://127.0.0.1"\n\n{tables}\n')
    assert main(["--config", str(path), "--check"]) == 0


def test_max_observations_bounds_a_servers_observations() -> None:
    """``[[server]] max_observations``: the default is the engine's, 0 is allowed (observe
    nothing), a negative number or a non-integer is refused with the key named."""
    assert config(server=[SERVER]).servers[0].max_observations == MAX_OBSERVATIONS
    assert config(server=[{**SERVER, "max_observations": 0}]).servers[0].max_observations == 0
    for bad, why in ((-1, ">= 0"), ("many", "integer")):
        error = refusal({"server": [{**SERVER, "max_observations": bad}]})
        assert (error.key, why in error.why) == ("server[0].max_observations", True)


def test_health_timeouts_per_transport_and_per_node() -> None:
    from bridged.health import HealthPolicy
    from bridged.transports.nodes import NodeId

    assert config().health == HealthPolicy()
    c = config(
        health={
            "minimum": "30s",
            "intervals": 5,
            "low_battery": 15,
            "transport": {"802154": "2h"},
            "node": {"ble:A4:C1:38:00:11:22": 900},
        }
    )
    assert (c.health.minimum, c.health.intervals, c.health.low_battery) == (30.0, 5.0, 15)
    assert c.health.transports == {"802154": 7200.0}
    assert c.health.nodes == {NodeId("ble", "A4:C1:38:00:11:22"): 900.0}
    assert c.health.timeout(NodeId("802154", "00124b0001020304"), 300, None) == 7200.0


@pytest.mark.parametrize(
    ("health", "message"),
    [
        ({"minimun": 60}, "health.minimun: unknown key (did you mean 'minimum'?)"),
        ({"intervals": 0}, "health.intervals: must be 1..1000, not 0"),
        ({"low_signal": 10}, "health.low_signal: must be -200..0, not 10"),
        ({"transport": {"ble": "soon"}}, "health.transport.ble: 'soon' is not a duration"),
        ({"node": {"A4:C1": 60}}, "health.node.A4:C1: 'A4' is not a transport name"),
    ],
)
def test_a_wrong_health_key_is_refused_by_name(health: dict[str, Any], message: str) -> None:
    assert message in str(refusal({"server": [dict(SERVER)], "health": health}))
