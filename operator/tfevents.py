"""TensorBoard event files, decoded with no TensorFlow: the scalars a trial wrote.

An event file (``events.out.tfevents.*``) is a TFRecord file: a sequence of records, each

    uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes
    | length bytes of data          | uint32 masked CRC-32C of the data

where the mask is ``((crc >> 15 | crc << 17) + 0xA282EAD8) mod 2**32``. The data of each record
is one serialized ``tensorflow.Event`` protobuf; the fields read here (every other field is
skipped by its wire type, so files holding graphs, histograms or images read fine):

    Event        { double wall_time = 1; int64 step = 2; Summary summary = 5; }
    Summary      { repeated Value value = 1; }
    Value        { string tag = 1; float simple_value = 2;  // TF1 tf.summary.scalar
                   TensorProto tensor = 8; }                 // TF2 tf.summary.scalar
    TensorProto  { DataType dtype = 1; TensorShapeProto tensor_shape = 2; bytes tensor_content = 4;
                   repeated float float_val = 5; repeated double double_val = 6;
                   repeated int32 int_val = 7; repeated int64 int64_val = 10;
                   repeated int32 half_val = 13; }
    TensorShapeProto { repeated Dim dim = 2; }   Dim { int64 size = 1; }

A TF2 scalar is a tensor of one element (shape [] or all sizes 1) of a float, double, half or
integer dtype; other tensors (histograms, text, images) are not scalars and are skipped.

Everything here is pure (bytes in, values out): operator/metric_files.py does the reading.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

# ----- CRC-32C (Castagnoli), as TFRecord frames use -----

_CASTAGNOLI = 0x82F63B78  # the reflected polynomial


def _crc_table() -> tuple[int, ...]:
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _CASTAGNOLI if c & 1 else c >> 1
        out.append(c)
    return tuple(out)


_TABLE = _crc_table()  # immutable: computed once, never changed


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ----- TFRecord framing -----

HEADER_BYTES = 12  # length (8) + its CRC (4)
FOOTER_BYTES = 4  # the data's CRC


@dataclass(frozen=True)
class Records:
    """What :func:`split_records` found in a buffer read from offset ``start`` of a file."""

    payloads: tuple[bytes, ...]  # the data of each intact record, in order
    end: int  # offset (in the file) just after the last record consumed: the next read starts there
    # Offset of a record whose length header fails its CRC: nothing after it can be framed,
    # so the rest of the file is unreadable (None: no such record).
    broken_at: int | None = None
    skipped: int = 0  # complete records whose data failed its CRC (corrupt; skipped)
    # A record longer than the buffer holds, although the file has it (the caller reads it
    # whole next time, from ``end``): its total size in bytes.
    needs: int | None = None


def record_size(header: bytes) -> int | None:
    """A record's total size from its first 12 bytes, or None if the length's CRC fails."""
    (length,) = struct.unpack_from("<Q", header, 0)
    (crc,) = struct.unpack_from("<I", header, 8)
    if masked_crc32c(header[:8]) != crc:
        return None
    return HEADER_BYTES + length + FOOTER_BYTES


def split_records(data: bytes, start: int, file_size: int, final: bool) -> Records:
    """The intact records in ``data`` (the bytes of a file from offset ``start``; the file is
    ``file_size`` bytes long now).

    A record that is not all there yet is incomplete: the writer is still writing it, so it
    is left for the next read (a torn last record is never an error). A record that is all
    there but whose data fails its CRC is skipped and counted, unless it is the file's last
    record and the trial still runs (``final`` False): a writer's data may become visible
    after its length on some filesystems, so it is read again next time."""
    payloads: list[bytes] = []
    pos = 0
    skipped = 0
    while len(data) - pos >= HEADER_BYTES:
        size = record_size(data[pos:pos + HEADER_BYTES])
        if size is None:
            # A torn header cannot fail its CRC (all 12 bytes are here): corruption. The
            # length cannot be trusted, so no record after it can be found.
            return Records(tuple(payloads), start + pos, broken_at=start + pos, skipped=skipped)
        if len(data) - pos < size:
            needs = size if start + pos + size <= file_size else None
            return Records(tuple(payloads), start + pos, skipped=skipped, needs=needs)
        body = data[pos + HEADER_BYTES:pos + size - FOOTER_BYTES]
        (crc,) = struct.unpack_from("<I", data, pos + size - FOOTER_BYTES)
        if masked_crc32c(body) == crc:
            payloads.append(bytes(body))
        elif start + pos + size >= file_size and not final:
            break  # the file's last record: its data may still be arriving
        else:
            skipped += 1
        pos += size
    return Records(tuple(payloads), start + pos, skipped=skipped)


# ----- protobuf wire format (just what Event needs) -----

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class DecodeError(ValueError):
    """A record whose data is no valid protobuf message."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise DecodeError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint longer than 10 bytes")


def _signed64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def _fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each field: varints and fixed-width values as
    ints (their raw bits), length-delimited ones as bytes. Groups (deprecated) are refused."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise DecodeError("field number 0")
        value: int | bytes
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _I64:
            if pos + 8 > n:
                raise DecodeError("truncated 64-bit field")
            (value,) = struct.unpack_from("<Q", buf, pos)
            pos += 8
        elif wire == _I32:
            if pos + 4 > n:
                raise DecodeError("truncated 32-bit field")
            (value,) = struct.unpack_from("<I", buf, pos)
            pos += 4
        elif wire == _LEN:
            size, pos = _varint(buf, pos)
            if pos + size > n:
                raise DecodeError("truncated length-delimited field")
            value = buf[pos:pos + size]
            pos += size
        else:
            raise DecodeError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _f32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def _f64(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


# ----- Event -> scalars -----

# DataType values (tensorflow/core/framework/types.proto) of the dtypes a scalar can have,
# with the struct format of one element in tensor_content.
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8, DT_INT64, DT_HALF = 1, 2, 3, 4, 5, 6, 9, 19
_CONTENT_FORMAT = {DT_FLOAT: "<f", DT_DOUBLE: "<d", DT_INT32: "<i", DT_UINT8: "<B", DT_INT16: "<h",
                   DT_INT8: "<b", DT_INT64: "<q", DT_HALF: "<e"}


@dataclass(frozen=True)
class Scalar:
    """One scalar summary value of an event."""

    tag: str
    step: int
    value: float
    wall_time: float


def _packed(wire: int, value: int | bytes, kind: str) -> list[float]:
    """The values of a repeated numeric field entry, packed (LEN) or not."""
    if wire == _LEN:
        assert isinstance(value, bytes)
        if kind in ("f", "d"):
            width = 4 if kind == "f" else 8
            if len(value) % width:
                raise DecodeError("packed field of a partial element")
            return list(struct.unpack(f"<{len(value) // width}{kind}", value))
        out: list[float] = []
        pos = 0
        while pos < len(value):
            v, pos = _varint(value, pos)
            out.append(float(_signed64(v)))
        return out
    assert isinstance(value, int)
    if kind == "f":
        return [_f32(value)] if wire == _I32 else []
    if kind == "d":
        return [_f64(value)] if wire == _I64 else []
    return [float(_signed64(value))] if wire == _VARINT else []


def _half(bits: int) -> float:
    return struct.unpack("<e", struct.pack("<H", bits & 0xFFFF))[0]


def tensor_scalar(buf: bytes) -> float | None:
    """The value of a one-element numeric TensorProto, else None."""
    dtype = 0
    elements = 1
    content: bytes | None = None
    values: list[float] = []
    for number, wire, value in _fields(buf):
        if number == 1 and wire == _VARINT:
            assert isinstance(value, int)
            dtype = value
        elif number == 2 and wire == _LEN:
            assert isinstance(value, bytes)
            for dn, dw, dv in _fields(value):
                if dn == 2 and dw == _LEN:  # a Dim
                    assert isinstance(dv, bytes)
                    size = next((_signed64(s) for sn, sw, s in _fields(dv) if sn == 1 and sw == _VARINT
                                 and isinstance(s, int)), 0)
                    elements *= size
                elif dn == 3 and dw == _VARINT and dv:
                    elements = -1  # unknown rank
        elif number == 4 and wire == _LEN:
            assert isinstance(value, bytes)
            content = value
        elif number == 5:
            values += _packed(wire, value, "f")
        elif number == 6:
            values += _packed(wire, value, "d")
        elif number in (7, 10):
            values += _packed(wire, value, "q")
        elif number == 13:
            values += [_half(int(v)) for v in _packed(wire, value, "q")]
    fmt = _CONTENT_FORMAT.get(dtype)
    if fmt is None or elements != 1:
        return None
    if content:
        if len(content) != struct.calcsize(fmt):
            return None
        return float(struct.unpack(fmt, content)[0])
    # Exactly one value (a writer always gives it; none would be a value nobody wrote).
    return values[0] if len(values) == 1 else None


def _value_scalar(buf: bytes) -> tuple[str, float] | None:
    """A Summary.Value's (tag, value) if it is a scalar."""
    tag: str | None = None
    simple: float | None = None
    tensor: float | None = None
    for number, wire, value in _fields(buf):
        if number == 1 and wire == _LEN:
            assert isinstance(value, bytes)
            tag = value.decode("utf-8", errors="replace")
        elif number == 2 and wire == _I32:
            assert isinstance(value, int)
            simple = _f32(value)
        elif number == 8 and wire == _LEN:
            assert isinstance(value, bytes)
            tensor = tensor_scalar(value)
    v = simple if simple is not None else tensor
    if tag is None or v is None:
        return None
    return tag, v


def event_scalars(payload: bytes) -> list[Scalar]:
    """The scalars of one Event record (none for a file_version, graph, log, ... event).
    Raises DecodeError for data that is no protobuf message."""
    wall_time = 0.0
    step = 0
    summaries: list[bytes] = []
    for number, wire, value in _fields(payload):
        if number == 1 and wire == _I64:
            assert isinstance(value, int)
            wall_time = _f64(value)
        elif number == 2 and wire == _VARINT:
            assert isinstance(value, int)
            step = _signed64(value)
        elif number == 5 and wire == _LEN:
            assert isinstance(value, bytes)
            summaries.append(value)
    out: list[Scalar] = []
    for summary in summaries:
        for number, wire, value in _fields(summary):
            if number == 1 and wire == _LEN:
                assert isinstance(value, bytes)
                tv = _value_scalar(value)
                if tv is not None:
                    out.append(Scalar(tv[0], step, tv[1], wall_time if math.isfinite(wall_time) else 0.0))
    return out


def is_event_file(name: str) -> bool:
    """TensorBoard's own rule: a file whose name contains 'tfevents' is an event file."""
    return "tfevents" in name
