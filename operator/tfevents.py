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

Reading costs what the scalars cost, not what the file weighs: real event files are mostly
images, histograms and graphs (megabytes a record) and the collector wants none of them. So a
record's structure is decoded first, in place (offsets into the buffer; a length-delimited
field that is not on the way to a scalar is skipped by its length, never copied), and its data
CRC is computed only when it matters: for a record holding a scalar (a scalar from a record
failing its CRC is refused, as corrupt), for a record that is no valid Event (to tell corrupt
from merely foreign), and for a file's last record while the trial runs (data landing after its
length must be waited for, not skipped). A record with no scalar is skipped whatever its CRC:
nothing of it is used. The length's own CRC is always checked: it decides where the next record
starts. A record too large to read whole is walked page by page from the file
(:func:`scan_large_record`), so an image's bytes are seeked past, not read.

Everything here is pure (bytes in, values out; the large-record walk takes a read function):
operator/metric_files.py does the reading.
"""

from __future__ import annotations

import math
import struct
import warnings
from dataclasses import dataclass
from typing import Callable, Protocol, overload

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


def crc32c_python(data: bytes | memoryview, crc: int = 0) -> int:
    """CRC-32C of ``data`` continuing from ``crc`` (the CRC of the bytes before it), table-driven
    byte by byte: the fallback when google-crc32c's C extension is not installed."""
    c = crc ^ 0xFFFFFFFF
    table = _TABLE
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _c_extend() -> Callable[[int, bytes], int] | None:
    """google-crc32c's C implementation (hardware CRC32 instructions where the CPU has them),
    or None when it is not installed or only its own pure-Python fallback is."""
    try:
        with warnings.catch_warnings():  # its warning when it has only Python: the fallback here is ours
            warnings.simplefilter("ignore", RuntimeWarning)
            import google_crc32c
    except ImportError:
        return None
    if getattr(google_crc32c, "implementation", None) != "c":
        return None
    extend: Callable[[int, bytes], int] = google_crc32c.extend
    return extend


_C_EXTEND = _c_extend()  # decided once at import; never changed
CRC_IMPLEMENTATION = "google-crc32c (C)" if _C_EXTEND is not None else "pure Python"


def crc32c(data: bytes | memoryview, crc: int = 0) -> int:
    """CRC-32C of ``data``, continuing from ``crc`` (the CRC of the bytes before it)."""
    if _C_EXTEND is None:
        return crc32c_python(data, crc)
    # The C extension takes only bytes-like objects needing no release: a memoryview is copied
    # (only records holding a scalar are checked, and those are small).
    return _C_EXTEND(crc, data if isinstance(data, bytes) else bytes(data))


def mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def masked_crc32c(data: bytes | memoryview) -> int:
    return mask(crc32c(data))


# ----- TFRecord framing -----

HEADER_BYTES = 12  # length (8) + its CRC (4)
FOOTER_BYTES = 4  # the data's CRC
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def record_size(header: bytes | memoryview) -> int | None:
    """A record's total size from its first 12 bytes, or None if the length's CRC fails."""
    (length,) = _U64.unpack_from(header, 0)
    (crc,) = _U32.unpack_from(header, 8)
    if masked_crc32c(bytes(header[:8])) != crc:
        return None
    return HEADER_BYTES + length + FOOTER_BYTES


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


def split_records(data: bytes, start: int, file_size: int, final: bool) -> Records:
    """Every intact record's data in ``data`` (the bytes of a file from offset ``start``; the
    file is ``file_size`` bytes long now), each checked by its CRC: for tools and tests that
    want whole records (the collector uses :func:`scan_records`, which checks only what it uses).

    A record that is not all there yet is incomplete: the writer is still writing it, so it
    is left for the next read (a torn last record is never an error). A record that is all
    there but whose data fails its CRC is skipped and counted, unless it is the file's last
    record and the trial still runs (``final`` False): a writer's data may become visible
    after its length on some filesystems, so it is read again next time."""
    payloads: list[bytes] = []
    pos = 0
    skipped = 0
    view = memoryview(data)
    while len(data) - pos >= HEADER_BYTES:
        size = record_size(view[pos:pos + HEADER_BYTES])
        if size is None:
            # A torn header cannot fail its CRC (all 12 bytes are here): corruption. The
            # length cannot be trusted, so no record after it can be found.
            return Records(tuple(payloads), start + pos, broken_at=start + pos, skipped=skipped)
        if len(data) - pos < size:
            needs = size if start + pos + size <= file_size else None
            return Records(tuple(payloads), start + pos, skipped=skipped, needs=needs)
        body = view[pos + HEADER_BYTES:pos + size - FOOTER_BYTES]
        (crc,) = _U32.unpack_from(data, pos + size - FOOTER_BYTES)
        if masked_crc32c(body) == crc:
            payloads.append(bytes(body))
        elif start + pos + size >= file_size and not final:
            break  # the file's last record: its data may still be arriving
        else:
            skipped += 1
        pos += size
    return Records(tuple(payloads), start + pos, skipped=skipped)


# ----- protobuf wire format (just what Event needs), decoded in place -----

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")


class DecodeError(ValueError):
    """A record whose data is no valid protobuf message."""


class ByteSource(Protocol):
    """What the decoder reads: bytes, or a record read from its file on demand (PagedBytes).
    Only single bytes and short slices (a tag, a number) are ever taken."""

    @overload
    def __getitem__(self, i: int) -> int: ...

    @overload
    def __getitem__(self, i: slice) -> bytes: ...

    def __len__(self) -> int: ...


def _varint(buf: ByteSource, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise DecodeError("truncated varint")
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1  # most keys and lengths: one byte
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        if pos >= end:
            raise DecodeError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint longer than 10 bytes")


def _signed64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def _key(buf: ByteSource, pos: int, end: int) -> tuple[int, int, int]:
    """(field number, wire type, position after the key)."""
    key, pos = _varint(buf, pos, end)
    if key < 8:
        raise DecodeError("field number 0")
    return key >> 3, key & 7, pos


def _skip(buf: ByteSource, wire: int, pos: int, end: int) -> int:
    """The position after a field's value, which is not read. Groups (deprecated) are refused."""
    if wire == _VARINT:
        return _varint(buf, pos, end)[1]
    if wire == _I64:
        if pos + 8 > end:
            raise DecodeError("truncated 64-bit field")
        return pos + 8
    if wire == _I32:
        if pos + 4 > end:
            raise DecodeError("truncated 32-bit field")
        return pos + 4
    if wire == _LEN:
        return _span(buf, pos, end)[1]
    raise DecodeError(f"unsupported wire type {wire}")


def _span(buf: ByteSource, pos: int, end: int) -> tuple[int, int]:
    """(start, end) of a length-delimited field's value whose length is at ``pos``."""
    size, pos = _varint(buf, pos, end)
    stop = pos + size
    if stop > end:
        raise DecodeError("truncated length-delimited field")
    return pos, stop


def _fixed(buf: ByteSource, pos: int, end: int, width: int) -> bytes:
    if pos + width > end:
        raise DecodeError(f"truncated {width * 8}-bit field")
    return bytes(buf[pos:pos + width])


# ----- Event -> scalars -----

# DataType values (tensorflow/core/framework/types.proto) of the dtypes a scalar can have,
# with the struct format of one element in tensor_content.
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8, DT_INT64, DT_HALF = 1, 2, 3, 4, 5, 6, 9, 19
_CONTENT_FORMAT = {DT_FLOAT: "<f", DT_DOUBLE: "<d", DT_INT32: "<i", DT_UINT8: "<B", DT_INT16: "<h",
                   DT_INT8: "<b", DT_INT64: "<q", DT_HALF: "<e"}
_REPEATED_NUMBERS = {5: "f", 6: "d", 7: "q", 10: "q", 13: "h"}  # TensorProto's *_val fields


@dataclass(frozen=True)
class Scalar:
    """One scalar summary value of an event."""

    tag: str
    step: int
    value: float
    wall_time: float


def _repeated(buf: ByteSource, kind: str, wire: int, a: int, b: int) -> list[float]:
    """The values of one entry of a repeated numeric field: packed (LEN, the value at a..b) or a
    single value (its wire type's value at a..b)."""
    if wire == _LEN:
        if kind in ("f", "d"):
            width = 4 if kind == "f" else 8
            if (b - a) % width:
                raise DecodeError("packed field of a partial element")
            return list(struct.unpack(f"<{(b - a) // width}{kind}", bytes(buf[a:b])))
        out: list[float] = []
        pos = a
        while pos < b:
            v, pos = _varint(buf, pos, b)
            out.append(_half(v) if kind == "h" else float(_signed64(v)))
        return out
    if kind == "f":
        return [_F32.unpack(bytes(buf[a:b]))[0]] if wire == _I32 else []
    if kind == "d":
        return [_F64.unpack(bytes(buf[a:b]))[0]] if wire == _I64 else []
    if wire != _VARINT:
        return []
    v, _ = _varint(buf, a, b)
    return [_half(v) if kind == "h" else float(_signed64(v))]


def _check_packed(buf: ByteSource, kind: str, wire: int, a: int, b: int) -> None:
    """Malformed packed values of a tensor that is no scalar: the checks that cost nothing (a
    histogram's values are not decoded just to be dropped)."""
    if wire != _LEN or a == b:
        return
    if kind in ("f", "d") and (b - a) % (4 if kind == "f" else 8):
        raise DecodeError("packed field of a partial element")
    if kind not in ("f", "d") and buf[b - 1] & 0x80:
        raise DecodeError("truncated varint")


def _half(bits: int) -> float:
    return float(struct.unpack("<e", struct.pack("<H", _signed64(bits) & 0xFFFF))[0])


def _dim_size(buf: ByteSource, pos: int, end: int) -> int:
    """A TensorShapeProto.Dim's size (its first size field; 0 without one)."""
    size: int | None = None
    while pos < end:
        number, wire, pos = _key(buf, pos, end)
        if number == 1 and wire == _VARINT:
            v, pos = _varint(buf, pos, end)
            if size is None:
                size = _signed64(v)
        else:
            pos = _skip(buf, wire, pos, end)
    return size if size is not None else 0


def _shape_elements(buf: ByteSource, pos: int, end: int, elements: int) -> int:
    while pos < end:
        number, wire, pos = _key(buf, pos, end)
        if number == 2 and wire == _LEN:
            a, pos = _span(buf, pos, end)
            elements *= _dim_size(buf, a, pos)
        elif number == 3 and wire == _VARINT:
            v, pos = _varint(buf, pos, end)
            if v:
                elements = -1  # unknown rank
        else:
            pos = _skip(buf, wire, pos, end)
    return elements


def _tensor_scalar(buf: ByteSource, pos: int, end: int) -> float | None:
    dtype = 0
    elements = 1
    content: tuple[int, int] | None = None
    repeated: list[tuple[str, int, int, int]] = []  # (kind, wire, start, end) of each *_val entry
    while pos < end:
        key = buf[pos]
        if 8 <= key < 0x80:
            number, wire, pos = key >> 3, key & 7, pos + 1
        else:
            number, wire, pos = _key(buf, pos, end)
        if wire == _LEN:
            if pos < end and buf[pos] < 0x80:
                a, pos = pos + 1, pos + 1 + buf[pos]
                if pos > end:
                    raise DecodeError("truncated length-delimited field")
            else:
                a, pos = _span(buf, pos, end)
            if number == 2:
                if pos > a:  # a scalar's shape is empty
                    elements = _shape_elements(buf, a, pos, elements)
            elif number == 4:
                content = (a, pos)
            elif number in _REPEATED_NUMBERS:
                repeated.append((_REPEATED_NUMBERS[number], wire, a, pos))
        elif number == 1 and wire == _VARINT:
            dtype, pos = _varint(buf, pos, end)
        elif number in _REPEATED_NUMBERS:
            a = pos
            pos = _skip(buf, wire, pos, end)
            repeated.append((_REPEATED_NUMBERS[number], wire, a, pos))
        else:
            pos = _skip(buf, wire, pos, end)
    fmt = _CONTENT_FORMAT.get(dtype)
    if fmt is None or elements != 1:
        for kind, wire, a, b in repeated:
            _check_packed(buf, kind, wire, a, b)
        return None
    values = [v for kind, wire, a, b in repeated for v in _repeated(buf, kind, wire, a, b)]
    if content is not None and content[1] > content[0]:
        a, b = content
        if b - a != struct.calcsize(fmt):
            return None
        return float(struct.unpack(fmt, bytes(buf[a:b]))[0])
    # Exactly one value (a writer always gives it; none would be a value nobody wrote).
    return values[0] if len(values) == 1 else None


def tensor_scalar(buf: bytes) -> float | None:
    """The value of a one-element numeric TensorProto, else None."""
    return _tensor_scalar(buf, 0, len(buf))


# The loops below read a one-byte key or length inline (nearly all of them are; _key and _span
# take the rest): a scalar record is a dozen fields, and calls are what decoding costs.

def _value_scalar(buf: ByteSource, pos: int, end: int) -> tuple[str, float] | None:
    """A Summary.Value's (tag, value) if it is a scalar. Its image, histogram, audio and
    metadata are skipped by their lengths; its tag is decoded only for a scalar."""
    tag_at = tag_end = -1
    simple: float | None = None
    tensor: float | None = None
    while pos < end:
        key = buf[pos]
        if 8 <= key < 0x80:
            number, wire, pos = key >> 3, key & 7, pos + 1
        else:
            number, wire, pos = _key(buf, pos, end)
        if wire == _LEN:
            if pos < end and buf[pos] < 0x80:
                a, stop = pos + 1, pos + 1 + buf[pos]
                if stop > end:
                    raise DecodeError("truncated length-delimited field")
            else:
                a, stop = _span(buf, pos, end)
            if number == 1:
                tag_at, tag_end = a, stop
            elif number == 8:
                tensor = _tensor_scalar(buf, a, stop)
            pos = stop
        elif number == 2 and wire == _I32:
            if pos + 4 > end:
                raise DecodeError("truncated 32-bit field")
            simple = _F32.unpack(bytes(buf[pos:pos + 4]))[0]
            pos += 4
        else:
            pos = _skip(buf, wire, pos, end)
    v = simple if simple is not None else tensor
    if tag_at < 0 or v is None:
        return None
    return bytes(buf[tag_at:tag_end]).decode("utf-8", errors="replace"), v


def _event_scalars(buf: ByteSource, pos: int, end: int) -> list[Scalar]:
    wall_time = 0.0
    step = 0
    summaries: list[tuple[int, int]] = []
    while pos < end:
        key = buf[pos]
        if 8 <= key < 0x80:
            number, wire, pos = key >> 3, key & 7, pos + 1
        else:
            number, wire, pos = _key(buf, pos, end)
        if wire == _LEN:
            a, pos = _span(buf, pos, end)
            if number == 5:
                summaries.append((a, pos))
        elif number == 1 and wire == _I64:
            if pos + 8 > end:
                raise DecodeError("truncated 64-bit field")
            wall_time = _F64.unpack(bytes(buf[pos:pos + 8]))[0]
            pos += 8
        elif number == 2 and wire == _VARINT:
            v, pos = _varint(buf, pos, end)
            step = _signed64(v) if v >= 1 << 63 else v
        else:
            pos = _skip(buf, wire, pos, end)
    if not summaries:
        return []
    out: list[Scalar] = []
    wall_time = wall_time if math.isfinite(wall_time) else 0.0
    for pos, stop in summaries:
        while pos < stop:
            key = buf[pos]
            if key == 0x0A:  # field 1, length-delimited: a Value
                pos += 1
                if pos < stop and buf[pos] < 0x80:
                    a, pos = pos + 1, pos + 1 + buf[pos]
                    if pos > stop:
                        raise DecodeError("truncated length-delimited field")
                else:
                    a, pos = _span(buf, pos, stop)
                tv = _value_scalar(buf, a, pos)
                if tv is not None:
                    out.append(Scalar(tv[0], step, tv[1], wall_time))
            else:
                number, wire, pos = _key(buf, pos, stop)
                pos = _skip(buf, wire, pos, stop)
    return out


def event_scalars(payload: bytes) -> list[Scalar]:
    """The scalars of one Event record (none for a file_version, graph, log, ... event).
    Raises DecodeError for data that is no protobuf message."""
    return _event_scalars(payload, 0, len(payload))


# ----- records -> scalars, CRC-checked only where it matters -----

@dataclass(frozen=True)
class RecordScan:
    """What :func:`scan_records` (or :func:`scan_large_record`) found from offset ``start``."""

    scalars: tuple[Scalar, ...]  # of the records that hold any, all of which passed their CRC
    end: int  # offset (in the file) just after the last record consumed: the next read starts there
    # Offset of a record whose length header fails its CRC: nothing after it can be framed.
    broken_at: int | None = None
    corrupt: int = 0  # records refused for a failing data CRC (ones holding a scalar, or no Event)
    foreign: int = 0  # records that passed their CRC but are no Event
    foreign_error: str = ""  # why the first of those is no Event
    # Stopped at a record the file does not hold whole yet, or at its last record whose data
    # fails its CRC while the trial runs: read again from ``end`` next time.
    waiting: bool = False
    # A record that does not fit in the buffer although the file holds it (the caller reads
    # it from ``end``, whole or with scan_large_record): its total size in bytes.
    needs: int | None = None


# What became of one whole record.
_KEEP, _SKIP, _CORRUPT, _FOREIGN, _WAIT = range(5)


def _judge(found: list[Scalar], error: DecodeError | None, last_open: bool, crc_ok: Callable[[], bool]) -> int:
    """A record's fate from its decoded structure; its CRC (``crc_ok``) is computed only for a
    record holding a scalar, one that is no Event, or the file's last one while it may grow."""
    if not found and error is None and not last_open:
        return _SKIP  # nothing of it is used, so whether it is intact does not matter
    if not crc_ok():
        return _WAIT if last_open else _CORRUPT
    if error is not None:
        return _FOREIGN
    return _KEEP if found else _SKIP


def _decode(buf: ByteSource, a: int, b: int) -> tuple[list[Scalar], DecodeError | None]:
    try:
        return _event_scalars(buf, a, b), None
    except DecodeError as e:
        return [], e


def scan_records(data: bytes, start: int, file_size: int, final: bool) -> RecordScan:
    """The scalars of the whole records in ``data`` (the bytes of a file from offset ``start``;
    the file is ``file_size`` bytes long now; ``final``: the trial has ended, so the file will
    not grow). Same outcome as :func:`split_records` + :func:`event_scalars` for every record
    that holds a scalar; see the module doc for which CRCs are computed."""
    scalars: list[Scalar] = []
    view = memoryview(data)
    n = len(data)
    pos = corrupt = foreign = 0
    foreign_error = ""
    while n - pos >= HEADER_BYTES:
        if masked_crc32c(data[pos:pos + 8]) != _U32.unpack_from(data, pos + 8)[0]:
            return RecordScan(tuple(scalars), start + pos, start + pos, corrupt, foreign, foreign_error)
        size = HEADER_BYTES + _U64.unpack_from(data, pos)[0] + FOOTER_BYTES
        if n - pos < size:
            whole_in_file = start + pos + size <= file_size
            return RecordScan(tuple(scalars), start + pos, None, corrupt, foreign, foreign_error,
                              waiting=not whole_in_file, needs=size if whole_in_file else None)
        a, b = pos + HEADER_BYTES, pos + size - FOOTER_BYTES
        found, error = _decode(data, a, b)
        last_open = not final and start + pos + size >= file_size
        if not found and error is None and not last_open:
            pos += size  # _judge's first rule, inline: most records of an image-heavy file
            continue
        stored = _U32.unpack_from(data, b)[0]
        fate = _judge(found, error, last_open, lambda: masked_crc32c(view[a:b]) == stored)
        if fate == _WAIT:
            return RecordScan(tuple(scalars), start + pos, None, corrupt, foreign, foreign_error, waiting=True)
        if fate == _KEEP:
            scalars += found
        elif fate == _CORRUPT:
            corrupt += 1
        elif fate == _FOREIGN:
            foreign += 1
            foreign_error = foreign_error or str(error)
        pos += size
    return RecordScan(tuple(scalars), start + pos, None, corrupt, foreign, foreign_error)


class ShortRead(OSError):
    """The file held less than it did a moment ago (truncated or replaced while being read)."""


PAGE_BYTES = 8192  # a large record is read this much at a time where its structure is
CRC_PIECE_BYTES = 1 << 20  # a large record's CRC is computed over pieces this large


class PagedBytes:
    """``length`` bytes of a file from ``offset``, read a page at a time where the decoder looks
    (``head``: the first bytes, already read). A few pages are kept; an image's payload, skipped
    by its length, is never read."""

    def __init__(self, read: Callable[[int, int], bytes], offset: int, length: int,
                 head: bytes | memoryview = b"") -> None:
        self._read = read
        self._offset = offset
        self._length = length
        self._head = head[:length]
        self._pages: dict[int, bytes] = {}

    def __len__(self) -> int:
        return self._length

    def _fetch(self, a: int, n: int) -> bytes:
        got = self._read(self._offset + a, n)
        if len(got) != n:
            raise ShortRead(f"read {len(got)} of {n} bytes at offset {self._offset + a}")
        return got

    def _page(self, p: int) -> bytes:
        page = self._pages.get(p)
        if page is None:
            if len(self._pages) >= 4:
                self._pages.pop(next(iter(self._pages)))  # the oldest
            a = p * PAGE_BYTES
            page = self._pages[p] = self._fetch(a, min(PAGE_BYTES, self._length - a))
        return page

    @overload
    def __getitem__(self, i: int) -> int: ...

    @overload
    def __getitem__(self, i: slice) -> bytes: ...

    def __getitem__(self, i: int | slice) -> int | bytes:
        if isinstance(i, slice):
            a, b, _ = i.indices(self._length)
            if b <= len(self._head):
                return self._head[a:b]
            if a // PAGE_BYTES == (b - 1) // PAGE_BYTES:
                return self._page(a // PAGE_BYTES)[a % PAGE_BYTES:b - (a // PAGE_BYTES) * PAGE_BYTES]
            return self._fetch(a, max(0, b - a))
        if not 0 <= i < self._length:
            raise IndexError(i)
        if i < len(self._head):
            return self._head[i]
        return self._page(i // PAGE_BYTES)[i % PAGE_BYTES]


def scan_large_record(read: Callable[[int, int], bytes], offset: int, size: int, file_size: int, final: bool,
                      head: bytes | memoryview = b"") -> RecordScan:
    """The one record at ``offset`` whose total ``size`` (from its checked header) the file
    holds, too large to read whole: its structure is walked from the file (``read(offset, n)``
    returns n bytes there; ``head`` holds the record's first bytes, already read), so what it
    holds besides scalars is never read, and its data CRC is streamed through in pieces when
    :func:`scan_records`' rule asks for it. Raises ShortRead if the file shrinks meanwhile."""
    a, length = offset + HEADER_BYTES, size - HEADER_BYTES - FOOTER_BYTES
    body = PagedBytes(read, a, length, head[HEADER_BYTES:])
    found, error = _decode(body, 0, length)

    def crc_ok() -> bool:
        stored = _U32.unpack(body_read(a + length, FOOTER_BYTES))[0]
        crc = 0
        for p in range(a, a + length, CRC_PIECE_BYTES):
            crc = crc32c(body_read(p, min(CRC_PIECE_BYTES, a + length - p)), crc)
        return mask(crc) == stored

    def body_read(p: int, n: int) -> bytes:
        got = read(p, n)
        if len(got) != n:
            raise ShortRead(f"read {len(got)} of {n} bytes at offset {p}")
        return got

    fate = _judge(found, error, not final and offset + size >= file_size, crc_ok)
    if fate == _WAIT:
        return RecordScan((), offset, waiting=True)
    return RecordScan(tuple(found) if fate == _KEEP else (), offset + size, corrupt=int(fate == _CORRUPT),
                      foreign=int(fate == _FOREIGN), foreign_error=str(error) if fate == _FOREIGN else "")


def is_event_file(name: str) -> bool:
    """TensorBoard's own rule: a file whose name contains 'tfevents' is an event file."""
    return "tfevents" in name
