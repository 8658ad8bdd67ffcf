"""The largest frame an AV1 bitstream may hold, read from its sequence headers.

An AVIF's container declares each picture's size (``ispe``, ``tkhd``), but the
AV1 decoder sizes the frame it allocates from the bitstream's own sequence
header, which the container's claim does not bind: a file declaring 100×100
over a 12000×12000 frame would be decoded at 12000×12000 (libavif accepts up to
16384×16384). ``app.heif`` hands the bitstreams here so that the service's
pixel limit bounds the frame as well as the claim, before any decoder runs.

Only the fields before the maximum frame size are read (AV1 specification,
5.5 "Sequence header OBU syntax"); every frame of the sequence is at most that
size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

OBU_SEQUENCE_HEADER = 1


class BitstreamError(ValueError):
    """A sequence header ends before its maximum frame size."""


def largest_frame(streams: Iterable[bytes]) -> tuple[int, int] | None:
    """The largest (width, height) any sequence header in ``streams`` allows, or None
    when they have none; the streams are read one at a time. Raises BitstreamError
    for a header cut short."""
    sizes = (max_frame_size(header) for stream in streams for header in sequence_headers(stream))
    return max(sizes, key=lambda size: size[0] * size[1], default=None)


def sequence_headers(stream: bytes) -> Iterator[bytes]:
    """The payload of each sequence header OBU in a low-overhead bitstream (the
    form AVIF stores: each OBU with its size, or the last one without)."""
    position = 0
    while position < len(stream):
        header = stream[position]
        position += 2 if header & 0b100 else 1  # the extension byte
        if header & 0b10:
            size, position = _leb128(stream, position)
        else:
            size = len(stream) - position
        if (header >> 3) & 0b1111 == OBU_SEQUENCE_HEADER:
            yield stream[position : position + size]
        position += size


def max_frame_size(header: bytes) -> tuple[int, int]:
    """(max_frame_width, max_frame_height) of a sequence header OBU's payload."""
    bits = _Bits(header)
    bits.read(3)  # seq_profile
    bits.read(1)  # still_picture
    if bits.read(1):  # reduced_still_picture_header
        bits.read(5)  # seq_level_idx
    else:
        decoder_model = False
        delay_length = 0
        if bits.read(1):  # timing_info_present_flag
            bits.read(32)  # num_units_in_display_tick
            bits.read(32)  # time_scale
            if bits.read(1):  # equal_picture_interval
                bits.uvlc()  # num_ticks_per_picture_minus_1
            decoder_model = bool(bits.read(1))  # decoder_model_info_present_flag
            if decoder_model:
                delay_length = bits.read(5) + 1  # buffer_delay_length_minus_1
                bits.read(32 + 5 + 5)  # decoding tick, removal and presentation time lengths
        initial_display_delay = bits.read(1)
        for _ in range(bits.read(5) + 1):  # operating_points_cnt_minus_1
            bits.read(12)  # operating_point_idc
            if bits.read(5) > 7:  # seq_level_idx
                bits.read(1)  # seq_tier
            if decoder_model and bits.read(1):  # decoder_model_present_for_this_op
                bits.read(2 * delay_length + 1)  # decoder and encoder delay, low_delay_mode
            if initial_display_delay and bits.read(1):
                bits.read(4)  # initial_display_delay_minus_1
    width_bits = bits.read(4) + 1
    height_bits = bits.read(4) + 1
    return bits.read(width_bits) + 1, bits.read(height_bits) + 1


def _leb128(data: bytes, position: int) -> tuple[int, int]:
    value = 0
    for index in range(8):
        if position >= len(data):
            raise BitstreamError("an OBU size is cut short")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            break
    return value, position


class _Bits:
    def __init__(self, data: bytes):
        self.data = data
        self.position = 0

    def read(self, count: int) -> int:
        if self.position + count > 8 * len(self.data):
            raise BitstreamError("a sequence header is cut short")
        value = 0
        for _ in range(count):
            byte = self.data[self.position >> 3]
            value = (value << 1) | ((byte >> (7 - (self.position & 7))) & 1)
            self.position += 1
        return value

    def uvlc(self) -> int:
        zeros = 0
        while not self.read(1):
            zeros += 1
            if zeros >= 32:
                return (1 << 32) - 1
        return self.read(zeros) + (1 << zeros) - 1
