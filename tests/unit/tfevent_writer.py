"""A tiny event-file encoder for tests, written apart from operator/tfevents.py (the decoder
under test) from the TFRecord and Event layouts; tests/fixtures/tfevents holds a file written
by TensorBoard's own writer to check both against the real thing."""

from __future__ import annotations

import struct


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def masked(data: bytes) -> int:
    c = _crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(payload: bytes, bad_length_crc: bool = False, bad_data_crc: bool = False) -> bytes:
    header = struct.pack("<Q", len(payload))
    hcrc = masked(header) ^ (1 if bad_length_crc else 0)
    dcrc = masked(payload) ^ (1 if bad_data_crc else 0)
    return header + struct.pack("<I", hcrc) + payload + struct.pack("<I", dcrc)


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def length_delimited(number: int, payload: bytes) -> bytes:
    return key(number, 2) + varint(len(payload)) + payload


def simple_value(tag: str, value: float) -> bytes:
    """A Summary.Value with a TF1 simple_value."""
    return length_delimited(1, tag.encode()) + key(2, 5) + struct.pack("<f", value)


def tensor_value(tag: str, tensor: bytes) -> bytes:
    """A Summary.Value holding a TensorProto (TF2), with the scalars plugin's metadata."""
    metadata = length_delimited(1, length_delimited(1, b"scalars"))
    return length_delimited(1, tag.encode()) + length_delimited(9, metadata) + length_delimited(8, tensor)


def tensor(dtype: int, *, dims: tuple[int, ...] = (), float_val: list[float] | None = None, packed: bool = True,
           double_val: list[float] | None = None, int64_val: list[int] | None = None, int_val: list[int] | None = None,
           content: bytes | None = None, half_val: list[int] | None = None) -> bytes:
    shape = b"".join(length_delimited(2, key(1, 0) + varint(d)) for d in dims)
    out = key(1, 0) + varint(dtype) + length_delimited(2, shape)
    if content is not None:
        out += length_delimited(4, content)
    if float_val is not None:
        if packed:
            out += length_delimited(5, b"".join(struct.pack("<f", v) for v in float_val))
        else:
            out += b"".join(key(5, 5) + struct.pack("<f", v) for v in float_val)
    if double_val is not None:
        out += length_delimited(6, b"".join(struct.pack("<d", v) for v in double_val))
    if int_val is not None:
        out += length_delimited(7, b"".join(varint(v) for v in int_val))
    if int64_val is not None:
        out += b"".join(key(10, 0) + varint(v) for v in int64_val)  # unpacked, as old writers did
    if half_val is not None:
        out += length_delimited(13, b"".join(varint(v) for v in half_val))
    return out


def event(step: int, *values: bytes, wall_time: float = 1700000000.0) -> bytes:
    summary = b"".join(length_delimited(1, v) for v in values)
    return key(1, 1) + struct.pack("<d", wall_time) + key(2, 0) + varint(step) + length_delimited(5, summary)


def file_version() -> bytes:
    return key(1, 1) + struct.pack("<d", 1700000000.0) + length_delimited(3, b"brain.Event:2")
