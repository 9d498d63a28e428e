"""The SMP updater's image check and the emulated MCUboot's state machine (no radio)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import cbor2
import pytest
from emulators.mcuboot import (
    EBADSTATE,
    SMP_HEADER,
    Mcuboot,
    McubootError,
    SmpServer,
    image,
    image_hash,
    version_of,
)
from hypothesis import given
from hypothesis import strategies as st

from bridged.transports.ble.gatt import GattPoller
from bridged.transports.ble.smp import SmpUpdater
from bridged.transports.firmware import (
    MCUBOOT_HEADER,
    MCUBOOT_MAGIC,
    FirmwareError,
    UpdateResult,
    mcuboot_hash,
    mcuboot_header,
)

OLD = image((1, 0, 0, 0), 500)
NEW = image((2, 3, 4, 5), 700)


def describe(data: bytes) -> tuple[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "package.bin"
        path.write_bytes(data)
        return SmpUpdater(GattPoller(lambda _a, _r: None), "C4:7C:8D:6A:00:01").describe(path)


def test_an_mcuboot_image_is_described_by_its_header() -> None:
    assert describe(NEW) == ("package.bin", "2.3.4+5")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"PK\x03\x04" + bytes(100),  # a zip (e.g. an nRF DFU package)
        NEW[:31],  # shorter than a header
        NEW[:200],  # a header saying more bytes than there are
        MCUBOOT_HEADER.pack(MCUBOOT_MAGIC, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0),  # header size < 32
    ],
    ids=["empty", "zip", "short", "truncated", "tiny-header"],
)
def test_anything_else_is_an_unsupported_package(data: bytes) -> None:
    with pytest.raises(FirmwareError) as refused:
        describe(data)
    assert refused.value.result == UpdateResult.UNSUPPORTED_PACKAGE


@given(st.binary(max_size=200))
def test_any_bytes_are_an_image_or_an_unsupported_package(data: bytes) -> None:
    header = mcuboot_header(data)
    try:
        name, version = describe(data)
    except FirmwareError as e:
        assert e.result == UpdateResult.UNSUPPORTED_PACKAGE
        assert header is None or header.header_size + header.image_size > len(data)
        return
    assert header is not None and version == header.version and name == "package.bin"


@given(st.binary(min_size=32, max_size=64), st.integers(0, 0xFFFF))
def test_a_header_with_the_magic_is_read_or_refused_never_raised(tail: bytes, hdr: int) -> None:
    data = MCUBOOT_HEADER.pack(MCUBOOT_MAGIC, 0, hdr, 0, 10, 0, 1, 2, 3, 4, 0) + tail
    header = mcuboot_header(data)
    assert (header is None) == (hdr < MCUBOOT_HEADER.size)


def test_an_images_hash_is_its_sha256_tlv_as_mcumgr_names_it() -> None:
    assert mcuboot_hash(NEW) == image_hash(NEW) != image_hash(OLD)
    assert mcuboot_hash(NEW[:-8]) is None  # its TLV cut short
    assert mcuboot_hash(b"PK\x03\x04" + bytes(100)) is None


@given(st.binary(max_size=120))
def test_any_bytes_after_a_header_give_a_hash_or_none_never_raise(tlvs: bytes) -> None:
    found = mcuboot_hash(NEW[: len(NEW) - 40] + tlvs)
    assert found is None or len(found) == 32


# -- the emulated MCUboot --------------------------------------------------------------------


def uploaded(boot: Mcuboot, data: bytes, chunk: int = 128) -> None:
    sha = hashlib.sha256(data).digest()
    off = boot.upload(0, data[:chunk], len(data), sha)
    while off < len(data):
        off = boot.upload(off, data[off : off + chunk], None, None)


def test_a_tested_image_runs_unconfirmed_and_is_kept_once_confirmed() -> None:
    boot = Mcuboot(OLD)
    uploaded(boot, NEW)
    assert [s["slot"] for s in boot.states()] == [0, 1]
    boot.test(image_hash(NEW))
    boot.reset()
    assert boot.primary == NEW and not boot.confirmed and boot.version == version_of(NEW)
    boot.confirm(None)
    boot.reset()
    assert boot.primary == NEW and boot.confirmed


def test_an_unconfirmed_image_reverts_on_the_next_reset() -> None:
    boot = Mcuboot(OLD)
    uploaded(boot, NEW)
    boot.test(image_hash(NEW))
    boot.reset()
    boot.reset()
    assert boot.primary == OLD and boot.confirmed and boot.boots == 2


def test_an_image_that_crashes_before_it_is_confirmed_is_reverted() -> None:
    boot = Mcuboot(OLD)
    crashing = image((2, 0, 0, 0), 300, crashes=True)
    uploaded(boot, crashing)
    boot.test(image_hash(crashing))
    boot.reset()
    assert boot.primary == OLD and boot.confirmed


def test_an_image_failing_its_check_cannot_be_marked_for_test() -> None:
    boot = Mcuboot(OLD)
    corrupt = image((2, 0, 0, 0), 300, corrupt=True)
    uploaded(boot, corrupt)
    with pytest.raises(McubootError) as refused:
        boot.test(image_hash(corrupt))
    assert refused.value.rc == EBADSTATE
    boot.reset()
    assert boot.primary == OLD


def test_an_upload_of_the_same_image_resumes_at_the_nodes_offset() -> None:
    boot = Mcuboot(OLD)
    sha = hashlib.sha256(NEW).digest()
    off = boot.upload(0, NEW[:300], len(NEW), sha)
    assert boot.upload(0, NEW[:100], len(NEW), sha) == off == 300  # the same image: resumed


def test_the_image_to_revert_to_is_not_overwritten_while_a_test_image_runs() -> None:
    boot = Mcuboot(OLD)
    uploaded(boot, NEW)
    boot.test(image_hash(NEW))
    boot.reset()
    with pytest.raises(McubootError) as refused:
        uploaded(boot, NEW)
    assert refused.value.rc == EBADSTATE
    boot.reset()
    assert boot.primary == OLD
    assert boot.upload(0, NEW[:100], len(NEW), bytes(32)) == 100  # another: started again


def test_the_smp_server_answers_frames_split_across_writes() -> None:
    server = SmpServer(Mcuboot(OLD))
    body = cbor2.dumps({})
    frame = SMP_HEADER.pack(0x08, 0, len(body), 1, 7, 0) + body  # v2 image state read
    assert server.feed(frame[:3]) == []
    (answer,) = server.feed(frame[3:])
    first, _, length, group, seq, cmd = SMP_HEADER.unpack_from(answer)
    assert length == len(answer) - SMP_HEADER.size
    assert (first, group, seq, cmd) == (0x09, 1, 7, 0)
    images = cbor2.loads(answer[SMP_HEADER.size :])["images"]
    assert images[0]["version"] == "1.0.0" and images[0]["active"]
