"""IEEE 802.15.4 frame security (transports/ieee802154/security.py): AES-CCM* over MAC frames.

The published vectors are IEEE 802.15.4-2006 Annex C: C.2.1 (a beacon at MIC-64) and C.2.3
(a command frame at ENC-MIC-64), key C0..CF, sender ACDE480000000001, frame counter 5. They
fix the nonce's byte order (the EUI-64 as written, the counter big-endian), the authenticated
header and the open command identifier. A data frame at the levels the gateway uses (5-7) is
checked against pycryptodome's AES-CCM, an implementation independent of the one the code uses.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridged.transports.ieee802154.errors import (
    AuthenticationError,
    RadioDecodeError,
    SecuredFrameError,
)
from bridged.transports.ieee802154.link_security import DEFAULT_KEY_ID
from bridged.transports.ieee802154.mac import (
    FrameType,
    FrameVersion,
    HeaderIE,
    MacFrame,
    SecurityHeader,
    build_frame,
    crc16_kermit,
    data_frame,
    parse_frame,
)
from bridged.transports.ieee802154.security import KeyIdentifier, nonce, seal, unseal

ANNEX_C_KEY = bytes(range(0xC0, 0xD0))
ANNEX_C_SOURCE = bytes.fromhex("acde480000000001")
ANNEX_C_DESTINATION = bytes.fromhex("acde480000000002")

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
NODE = bytes.fromhex("00124b00aabbccdd")
GATEWAY = bytes.fromhex("f4ce360000c0ffee")
PAN = 0xFACE


def fcs(body: bytes) -> bytes:
    return body + crc16_kermit(body).to_bytes(2, "little")


def test_annex_c_2_1_beacon_frame_mic_64() -> None:
    beacon = MacFrame(
        FrameType.BEACON,
        0x84,
        src=ANNEX_C_SOURCE,
        src_pan=0x4321,
        security=SecurityHeader(2, 0, 5),
        payload=bytes.fromhex("55cf000051525354"),
    )
    psdu = seal(beacon, ANNEX_C_KEY)
    expected = "08d0842143010000000048deac02050000 0055cf000051525354 223bc1ec841ab553"
    assert psdu == fcs(bytes.fromhex(expected.replace(" ", "")))
    assert unseal(parse_frame(psdu), psdu, ANNEX_C_KEY).payload == beacon.payload


def test_annex_c_2_3_command_frame_enc_mic_64() -> None:
    command = MacFrame(
        FrameType.COMMAND,
        0x84,
        dst=ANNEX_C_DESTINATION,
        src=ANNEX_C_SOURCE,
        dst_pan=0x4321,
        src_pan=0xFFFF,
        ack_request=True,
        security=SecurityHeader(6, 0, 5),
        payload=bytes.fromhex("01ce"),  # association request: the command ID stays open
    )
    psdu = seal(command, ANNEX_C_KEY)
    header = "2bdc842143020000000048deacffff010000000048deac0605000000 01"
    assert psdu == fcs(bytes.fromhex((header + "d8 4fde529061f9c6f1").replace(" ", "")))
    assert nonce(ANNEX_C_SOURCE, 5, 6) == bytes.fromhex("acde480000000001 00000005 06")
    assert unseal(parse_frame(psdu), psdu, ANNEX_C_KEY).payload == command.payload


def secured_data(
    payload: bytes,
    level: int = 5,
    key_id: KeyIdentifier = DEFAULT_KEY_ID,
    counter: int = 7,
    version: FrameVersion = FrameVersion.V2006,
) -> MacFrame:
    frame = data_frame(seq=3, src=NODE, dst=GATEWAY, pan_id=PAN, payload=payload, version=version)
    return replace(frame, security=key_id.header(level, counter))


@pytest.mark.parametrize("level", [5, 6, 7])
@pytest.mark.parametrize(
    "key_id", [KeyIdentifier(0, b"", None), KeyIdentifier(1, b"", 1), KeyIdentifier(2, b"PAN1", 9)]
)
def test_a_data_frame_is_what_an_independent_ccm_makes_of_it(
    level: int, key_id: KeyIdentifier
) -> None:
    from Crypto.Cipher import AES  # pycryptodome: test-time only

    payload = b"\x7e\x33\xf0\x4d\x4c\x44\x02 a CoAP message"
    frame = secured_data(payload, level, key_id, counter=0x01020304)
    psdu = seal(frame, KEY)
    header = build_frame(replace(frame, payload=b""))[:-2]  # MHR and auxiliary header
    mic = (0, 4, 8, 16)[level & 3]
    number = NODE + bytes.fromhex("01020304") + bytes((level,))
    ccm = AES.new(KEY, AES.MODE_CCM, nonce=number, mac_len=mic)
    ccm.update(header)
    ciphertext, tag = ccm.encrypt_and_digest(payload)
    assert psdu == fcs(header + ciphertext + tag)
    assert payload not in psdu
    assert unseal(parse_frame(psdu), psdu, KEY) == frame


@settings(max_examples=200)
@given(
    payload=st.binary(max_size=60),
    level=st.sampled_from([1, 2, 3, 5, 6, 7]),
    counter=st.integers(0, 0xFFFFFFFF),
    version=st.sampled_from([FrameVersion.V2006, FrameVersion.V2015]),
)
def test_round_trip(payload: bytes, level: int, counter: int, version: FrameVersion) -> None:
    frame = data_frame(seq=1, src=NODE, dst=GATEWAY, pan_id=PAN, payload=payload, version=version)
    frame = replace(frame, security=SecurityHeader(level, 1, counter, b"", 1))
    psdu = seal(frame, KEY)
    assert unseal(parse_frame(psdu), psdu, KEY) == frame


def test_another_key_is_an_authentication_error() -> None:
    psdu = seal(secured_data(b"reading"), KEY)
    with pytest.raises(AuthenticationError):
        unseal(parse_frame(psdu), psdu, bytes(16))


@settings(max_examples=300)
@given(position=st.integers(0, 200), flip=st.integers(1, 255))
def test_a_changed_byte_is_never_taken(position: int, flip: int) -> None:
    """Any byte changed on the way (the FCS made to fit, as a forger would) is refused by the
    header's checks or by the MIC: never opened into other plaintext."""
    body = bytearray(seal(secured_data(b"21.5 Cel at 12:00"), KEY)[:-2])
    body[position % len(body)] ^= flip
    psdu = fcs(bytes(body))
    with pytest.raises(RadioDecodeError):
        frame = parse_frame(psdu)
        unseal(frame, psdu, KEY)


@settings(max_examples=500)
@given(st.binary(max_size=130))
def test_bad_bytes_are_a_typed_error(data: bytes) -> None:
    psdu = fcs(data)
    try:
        frame = parse_frame(psdu)
        if frame.security is not None:
            unseal(frame, psdu, KEY)
    except RadioDecodeError:
        pass


V2015 = secured_data(b"x", version=FrameVersion.V2015)


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (secured_data(b"x", level=4), "level 4"),
        (replace(V2015, security=SecurityHeader(5, 1, None, b"", 1)), "suppression"),
        (replace(V2015, header_ies=(HeaderIE(0x1A, b"\x00"),)), "Information Elements"),
        (replace(secured_data(b"x"), src=b"\x00\x05"), "short address"),
    ],
)
def test_what_is_not_supported_is_said(frame: MacFrame, why: str) -> None:
    psdu = build_frame(replace(frame, payload=frame.payload + bytes(4)))
    with pytest.raises(SecuredFrameError, match=why):
        unseal(parse_frame(psdu), psdu, KEY)
    with pytest.raises(ValueError):
        seal(frame, KEY)


def test_key_identifiers_that_cannot_be_on_the_air_are_refused() -> None:
    for mode, source, index in [(0, b"", 1), (1, b"", None), (2, b"abc", 1), (4, b"", 1)]:
        with pytest.raises(ValueError):
            KeyIdentifier(mode, source, index)
