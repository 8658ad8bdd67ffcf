"""app.av1: the largest frame an AV1 stream allows, from its sequence headers.

Headers are written here bit by bit (AV1 specification 5.5), with the optional
parts encoders other than libavif's write: timing and decoder-model information,
several operating points, initial display delays.
"""

from __future__ import annotations

import pytest

from app import av1


class Bits:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def put(self, value: int, count: int) -> Bits:
        self.bits += [(value >> (count - 1 - index)) & 1 for index in range(count)]
        return self

    def uvlc(self, value: int) -> Bits:
        zeros = (value + 1).bit_length() - 1
        return self.put(0, zeros).put(1, 1).put(value + 1 - (1 << zeros), zeros)

    def bytes(self) -> bytes:
        padded = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(
            int("".join(map(str, padded[index : index + 8])), 2)
            for index in range(0, len(padded), 8)
        )


def sequence_header(width: int, height: int, *, reduced: bool = False, full: bool = False) -> bytes:
    """A sequence header's payload up to its maximum frame size (and a trailing byte)."""
    bits = Bits().put(0, 3).put(1, 1).put(int(reduced), 1)
    if reduced:
        bits.put(31, 5)
    else:
        bits.put(int(full), 1)  # timing_info_present_flag
        if full:
            bits.put(1, 32).put(30, 32).put(1, 1).uvlc(4)  # equal picture interval
            bits.put(1, 1).put(9, 5).put(90000, 32).put(3, 5).put(3, 5)  # decoder model
        bits.put(int(full), 1)  # initial_display_delay_present_flag
        points = 3 if full else 1
        bits.put(points - 1, 5)
        for level in range(points):
            bits.put(0x10F, 12).put(8 + level, 5).put(1, 1)  # levels over 7 carry a tier
            if full:
                bits.put(1, 1).put(5, 10).put(6, 10).put(1, 1)  # this point's delays
                bits.put(1, 1).put(9, 4)
    width_bits, height_bits = (width - 1).bit_length() or 1, (height - 1).bit_length() or 1
    bits.put(width_bits - 1, 4).put(height_bits - 1, 4)
    return bits.put(width - 1, width_bits).put(height - 1, height_bits).put(0xA5, 8).bytes()


def obu(kind: int, payload: bytes, *, sized: bool = True, extension: bool = False) -> bytes:
    header = bytes([(kind << 3) | (0b100 if extension else 0) | (0b10 if sized else 0)])
    header += b"\x00" if extension else b""
    size = len(payload)
    leb = bytearray()
    while True:
        leb.append((size & 0x7F) | (0x80 if size > 0x7F else 0))
        size >>= 7
        if not size:
            break
    return header + (bytes(leb) if sized else b"") + payload


@pytest.mark.parametrize(
    "shape", [{"reduced": True}, {}, {"full": True}], ids=["reduced", "plain", "full"]
)
@pytest.mark.parametrize("size", [(1, 1), (100, 100), (4032, 3024), (12000, 65536)])
def test_the_maximum_frame_size_is_read(shape: dict, size: tuple[int, int]) -> None:
    assert av1.max_frame_size(sequence_header(*size, **shape)) == size


def test_the_largest_of_several_sequence_headers_counts() -> None:
    temporal_delimiter = obu(2, b"")
    stream = (
        temporal_delimiter
        + obu(av1.OBU_SEQUENCE_HEADER, sequence_header(100, 100))
        + obu(6, bytes(300))  # a frame, its size in two leb128 bytes
        + obu(av1.OBU_SEQUENCE_HEADER, sequence_header(12000, 12000, full=True), extension=True)
        + obu(av1.OBU_SEQUENCE_HEADER, sequence_header(200, 100), sized=False)
    )
    assert list(map(av1.max_frame_size, av1.sequence_headers(stream))) == [
        (100, 100),
        (12000, 12000),
        (200, 100),
    ]
    assert av1.largest_frame([stream]) == (12000, 12000)
    assert av1.largest_frame([obu(6, bytes(10))]) is None


@pytest.mark.parametrize("keep", [1, 2, 5])
def test_a_header_cut_short_is_an_error(keep: int) -> None:
    header = sequence_header(4032, 3024, full=True)
    with pytest.raises(av1.BitstreamError):
        av1.largest_frame([obu(av1.OBU_SEQUENCE_HEADER, header[:keep])])
    with pytest.raises(av1.BitstreamError):
        av1.largest_frame([bytes([(av1.OBU_SEQUENCE_HEADER << 3) | 0b10, 0x80])])  # size cut
