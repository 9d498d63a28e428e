"""AdvertDecoder: format dispatch, replay protection, downgrade refusal, dedupe, bounds.

The encrypted vector is the BTHome v2 example of the reference parser's test suite
(Bluetooth-Devices bthome-ble, tests/test_parser_v2.py); the others are those of
test_ruuvi.py and test_atc.py.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridged.objects.paths import Path
from bridged.transports.ble import atc, bthome, ruuvi
from bridged.transports.ble.adverts import (
    AdvertDecodeError,
    AdvertDecoder,
    BindKeyRequired,
    Decoded,
    DecryptionFailed,
    DuplicateAdvert,
    MalformedAdvert,
    RawAdvert,
    ReplayedAdvert,
    UnencryptedAdvert,
    UnknownObjectId,
)

MAC = "54:48:E6:8F:80:A5"
KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
ENCRYPTED = bytes.fromhex("41a47266c95f730011223378237214")
RUUVI = bytes.fromhex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")
ATC1441 = bytes.fromhex("582d341233dc00e03e490b2c2e")
PVVX = bytes.fromhex("dc3312342d582f09aa173d0b4b7c05")


def advert(
    service_data: Mapping[str, bytes] | None = None,
    manufacturer_data: Mapping[int, bytes] | None = None,
    time: float = 100.0,
    address: str = MAC,
) -> RawAdvert:
    return RawAdvert(address, "node", -70, service_data or {}, manufacturer_data or {}, time)


def bthome_advert(data: bytes, time: float = 100.0, address: str = MAC) -> RawAdvert:
    return advert({bthome.UUID: data}, time=time, address=address)


def values(decoded: Decoded | None) -> dict[str, object]:
    assert decoded is not None
    return {str(r.path): r.value for r in decoded.records}


def test_encrypted_bthome_vector() -> None:
    decoded = AdvertDecoder().decode(bthome_advert(ENCRYPTED), KEY)
    assert decoded is not None
    assert decoded.profile == "bthome" and decoded.encrypted and decoded.packet_id is None
    assert values(decoded) == {
        "/3303/0/5700": 25.06,
        "/3303/0/5701": "Cel",
        "/3304/0/5700": 50.55,
        "/3304/0/5701": "%RH",
    }
    assert [r.time for r in decoded.records] == [100.0, None, 100.0, None]


def test_plain_bthome() -> None:
    decoded = AdvertDecoder().decode(bthome_advert(bytes.fromhex("4002ca0903bf13")))
    assert decoded is not None and not decoded.encrypted
    assert values(decoded)["/3303/0/5700"] == 25.06


def test_ruuvi() -> None:
    decoded = AdvertDecoder().decode(advert(manufacturer_data={ruuvi.COMPANY_ID: RUUVI}))
    assert decoded is not None
    assert (decoded.profile, decoded.packet_id, decoded.encrypted) == ("ruuvi", 205, False)
    got = values(decoded)
    assert got["/3315/0/5700"] == 1000.44 and got["/3315/0/5701"] == "hPa"
    assert got["/3313/0/5704"] == 1.036 and got["/3316/0/5700"] == 2.977


@pytest.mark.parametrize(("data", "profile"), [(ATC1441, "atc1441"), (PVVX, "pvvx")])
def test_atc_and_pvvx(data: bytes, profile: str) -> None:
    decoded = AdvertDecoder().decode(advert({atc.UUID: data}))
    assert decoded is not None and decoded.profile == profile
    assert values(decoded)["/3/0/9"] in (73, 75)


def test_not_recognised() -> None:
    decoder = AdvertDecoder()
    assert decoder.decode(advert()) is None
    assert decoder.decode(advert({"0000fe95-0000-1000-8000-00805f9b34fb": b"\x58\x58"})) is None
    assert decoder.decode(advert(manufacturer_data={0x004C: b"\x02\x15"})) is None
    assert decoder.decode(advert(manufacturer_data={ruuvi.COMPANY_ID: b"\x03" + RUUVI[1:]})) is None
    assert decoder.decode(advert({atc.UUID: bytes(11)})) is None


def test_encrypted_without_key_and_with_wrong_key() -> None:
    decoder = AdvertDecoder()
    with pytest.raises(BindKeyRequired):
        decoder.decode(bthome_advert(ENCRYPTED))
    with pytest.raises(DecryptionFailed):
        decoder.decode(bthome_advert(ENCRYPTED), bytes(16))
    # A failed frame does not count: the right key still decodes it.
    assert decoder.decode(bthome_advert(ENCRYPTED), KEY) is not None


def test_plaintext_from_a_keyed_node_is_refused() -> None:
    decoder = AdvertDecoder()
    with pytest.raises(UnencryptedAdvert):
        decoder.decode(bthome_advert(bytes.fromhex("4002ca09")), KEY)
    with pytest.raises(UnencryptedAdvert):
        decoder.decode(advert({atc.UUID: ATC1441}), KEY)
    with pytest.raises(UnencryptedAdvert):
        decoder.decode(advert(manufacturer_data={ruuvi.COMPANY_ID: RUUVI}), KEY)


def encrypted(counter: int, temperature: float = 21.0) -> bytes:
    return bthome.encode([(0x02, temperature)], bindkey=KEY, address=MAC, counter=counter)


def test_counter_replay_protection() -> None:
    decoder = AdvertDecoder()
    assert decoder.decode(bthome_advert(encrypted(10)), KEY) is not None
    with pytest.raises(DuplicateAdvert):  # the node repeating its frame
        decoder.decode(bthome_advert(encrypted(10)), KEY)
    with pytest.raises(ReplayedAdvert):  # same counter, other content
        decoder.decode(bthome_advert(encrypted(10, 22.0)), KEY)
    with pytest.raises(ReplayedAdvert):  # an old frame sent again, much later
        decoder.decode(bthome_advert(encrypted(9), time=10_000.0), KEY)
    assert decoder.decode(bthome_advert(encrypted(11)), KEY) is not None
    with pytest.raises(ReplayedAdvert):
        decoder.decode(bthome_advert(encrypted(10)), KEY)


def test_forged_frame_does_not_move_the_counter() -> None:
    decoder = AdvertDecoder()
    assert decoder.decode(bthome_advert(encrypted(10)), KEY) is not None
    forged = bthome.encode([(0x02, 99.0)], bindkey=bytes(16), address=MAC, counter=2**32 - 1)
    with pytest.raises(DecryptionFailed):
        decoder.decode(bthome_advert(forged), KEY)
    assert decoder.decode(bthome_advert(encrypted(11)), KEY) is not None


def test_forget_resets_the_counter() -> None:
    decoder = AdvertDecoder()
    decoder.decode(bthome_advert(encrypted(500)), KEY)
    with pytest.raises(ReplayedAdvert):
        decoder.decode(bthome_advert(encrypted(1)), KEY)
    decoder.forget(MAC)
    assert decoder.decode(bthome_advert(encrypted(1)), KEY) is not None


def test_counters_are_per_node() -> None:
    decoder = AdvertDecoder()
    other = "11:22:33:44:55:66"
    decoder.decode(bthome_advert(encrypted(500)), KEY)
    frame = bthome.encode([(0x02, 1.0)], bindkey=KEY, address=other, counter=1)
    assert decoder.decode(bthome_advert(frame, address=other), KEY) is not None


def plain(packet_id: int, temperature: float = 20.0) -> bytes:
    return bthome.encode([(0x00, packet_id), (0x02, temperature)])


def test_packet_id_dedupe() -> None:
    decoder = AdvertDecoder(dedupe_window=4.0)
    decoded = decoder.decode(bthome_advert(plain(7), time=100.0))
    assert decoded is not None and decoded.packet_id == 7
    with pytest.raises(DuplicateAdvert):
        decoder.decode(bthome_advert(plain(7), time=101.0))
    with pytest.raises(DuplicateAdvert):  # a late copy of an older packet
        decoder.decode(bthome_advert(plain(6), time=101.5))
    assert decoder.decode(bthome_advert(plain(8), time=102.0)) is not None
    # After the window the same ID is news again.
    assert decoder.decode(bthome_advert(plain(8), time=110.0)) is not None
    # Wrapping around 255 -> 0 is new, not old.
    assert decoder.decode(bthome_advert(plain(250), time=120.0)) is not None
    assert decoder.decode(bthome_advert(plain(2), time=121.0)) is not None
    with pytest.raises(DuplicateAdvert):
        decoder.decode(bthome_advert(plain(250), time=121.5))


def test_dedupe_is_per_address_and_skips_adverts_without_an_id() -> None:
    decoder = AdvertDecoder()
    decoder.decode(bthome_advert(plain(7)))
    assert decoder.decode(bthome_advert(plain(7), address="11:22:33:44:55:66")) is not None
    no_id = bthome.encode([(0x02, 20.0)])
    assert decoder.decode(bthome_advert(no_id)) is not None
    assert decoder.decode(bthome_advert(no_id)) is not None


def test_ruuvi_and_atc_sequence_dedupe() -> None:
    decoder = AdvertDecoder()
    decoder.decode(advert(manufacturer_data={ruuvi.COMPANY_ID: RUUVI}))
    with pytest.raises(DuplicateAdvert):
        decoder.decode(advert(manufacturer_data={ruuvi.COMPANY_ID: RUUVI}, time=101.0))
    other = "A4:C1:38:00:00:01"
    decoder.decode(advert({atc.UUID: ATC1441}, address=other))
    with pytest.raises(DuplicateAdvert):
        decoder.decode(advert({atc.UUID: ATC1441}, address=other, time=100.5))


def test_button_events_are_counted() -> None:
    decoder = AdvertDecoder()
    counts = []
    for pid, event in enumerate(["press", "none", "long_press", "press"]):
        data = bthome.encode([(0x00, pid), (0x3A, event)])
        decoded = decoder.decode(bthome_advert(data, time=100.0 + pid))
        assert decoded is not None
        got = values(decoded)
        assert got["/3347/0/5750"] == event
        assert got["/3347/0/5500"] is (event != "none")
        counts.append(got["/3347/0/5501"])
    assert counts == [1, 1, 2, 3]
    with pytest.raises(DuplicateAdvert):  # a repeated press is not counted twice
        decoder.decode(bthome_advert(bthome.encode([(0x00, 3), (0x3A, "press")]), time=103.5))
    data = bthome.encode([(0x00, 4), (0x3A, "press"), (0x3A, "double_press")])
    decoded = decoder.decode(bthome_advert(data, time=104.0))
    assert decoded is not None
    assert (values(decoded)["/3347/0/5501"], values(decoded)["/3347/1/5501"]) == (4, 1)


def test_memory_is_bounded() -> None:
    decoder = AdvertDecoder(max_nodes=3)
    for i in range(10):
        decoder.decode(bthome_advert(plain(1), address=f"00:00:00:00:00:{i:02X}"))
    assert len(decoder._seen) == 3
    # The latest are remembered, the oldest forgotten.
    with pytest.raises(DuplicateAdvert):
        decoder.decode(bthome_advert(plain(1), address="00:00:00:00:00:09"))
    assert decoder.decode(bthome_advert(plain(1), address="00:00:00:00:00:00")) is not None


def test_unknown_object_id_is_typed() -> None:
    with pytest.raises(UnknownObjectId):
        AdvertDecoder().decode(bthome_advert(bytes.fromhex("40700001")))


def test_records_paths_are_node_local() -> None:
    decoded = AdvertDecoder().decode(bthome_advert(bytes.fromhex("4002ca09")))
    assert decoded is not None
    assert decoded.records[0].path == Path((3303, 0, 5700))


UUIDS = [bthome.UUID, atc.UUID, "0000fe95-0000-1000-8000-00805f9b34fb"]


@given(
    st.dictionaries(st.sampled_from(UUIDS), st.binary(max_size=30), max_size=3),
    st.dictionaries(st.sampled_from([ruuvi.COMPANY_ID, 0x004C]), st.binary(max_size=30)),
    st.sampled_from([None, KEY]),
)
def test_random_bytes_raise_only_typed_errors(
    service_data: dict[str, bytes], manufacturer_data: dict[int, bytes], key: bytes | None
) -> None:
    decoder = AdvertDecoder()
    for _ in range(2):  # the second time through the dedupe and counter state
        try:
            decoded = decoder.decode(advert(service_data, manufacturer_data), key)
        except AdvertDecodeError:
            continue
        assert decoded is None or decoded.profile in ("bthome", "ruuvi", "atc1441", "pvvx")


def test_malformed_is_the_base_of_decode_errors() -> None:
    assert issubclass(UnknownObjectId, MalformedAdvert)
    for error in (MalformedAdvert, BindKeyRequired, DecryptionFailed, ReplayedAdvert):
        assert issubclass(error, AdvertDecodeError) and issubclass(error, ValueError)
