"""TensorBoard event files decoded without TensorFlow (operator/tfevents.py) and read as they
grow (operator/metric_files.py): records framed and checked by CRC-32C, a torn last record
waited for, a corrupt one skipped, TF1 and TF2 scalars read and every other value skipped."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest

from autotune_operator import metric_files
from autotune_operator.metric_files import EventsCursor, FileCursor, FileSource, read_new
from autotune_operator.tfevents import (DT_DOUBLE, DT_FLOAT, DT_HALF, DT_INT32, DT_INT64, DecodeError, Scalar, ShortRead,
                                        crc32c, crc32c_python, event_scalars, masked_crc32c, scan_large_record,
                                        scan_records, split_records, tensor_scalar)
from tests.unit import tfevent_writer as w

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tfevents"
DT_STRING = 7


def test_crc32c_known_answers() -> None:
    # The CRC-32C check value (RFC 3720's polynomial) and the test writer's independent CRC.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    for data in (b"", b"a", bytes(range(256)), b"brain.Event:2" * 7):
        assert masked_crc32c(data) == w.masked(data)


def test_a_file_written_by_tensorboard_itself_decodes() -> None:
    """tests/fixtures/tfevents/make_fixture.py: TensorBoard 2.21's writer, TF1 and TF2 scalars
    of four dtypes and a 2x3 tensor that is no scalar."""
    (path,) = FIXTURES.glob("events.out.tfevents.*")
    data = path.read_bytes()
    records = split_records(data, 0, len(data), final=False)
    assert records.end == len(data) and records.skipped == 0 and records.broken_at is None
    scalars = [s for p in records.payloads for s in event_scalars(p)]
    got = {(s.tag, s.step): s.value for s in scalars}
    for step in range(3):
        assert got[("loss", step)] == pytest.approx(1 / (step + 1), rel=1e-6)  # float32 simple_value
        assert got[("accuracy", step)] == 0.5 + 0.125 * step
        assert got[("acc64", step)] == 0.25 * step
        assert got[("count", step)] == -step  # a negative int64 (a 10-byte varint)
        assert got[("i32", step)] == 7 * step
    assert len(scalars) == 15 and not any(s.tag == "hist" for s in scalars)
    scan = scan_records(data, 0, len(data), final=False)  # the collector's path: the same scalars
    assert scan.scalars == tuple(scalars) and scan.end == len(data) and not scan.corrupt and not scan.foreign
    assert {s.wall_time for s in scalars if s.tag == "loss"} == {1700000000.0, 1700000001.0, 1700000002.0}


def test_tf2_tensor_representations() -> None:
    assert tensor_scalar(w.tensor(DT_FLOAT, float_val=[0.25])) == 0.25
    assert tensor_scalar(w.tensor(DT_FLOAT, float_val=[0.25], packed=False)) == 0.25
    assert tensor_scalar(w.tensor(DT_DOUBLE, double_val=[0.1])) == 0.1
    assert tensor_scalar(w.tensor(DT_INT64, int64_val=[-5])) == -5
    assert tensor_scalar(w.tensor(DT_INT32, int_val=[12])) == 12
    assert tensor_scalar(w.tensor(DT_DOUBLE, content=struct.pack("<d", 0.875))) == 0.875
    assert tensor_scalar(w.tensor(DT_FLOAT, dims=(1, 1), content=struct.pack("<f", 1.5))) == 1.5
    assert tensor_scalar(w.tensor(DT_HALF, half_val=[0x3C00])) == 1.0  # float16 bits of 1.0
    # Not scalars: more than one element, no value, a string, content of the wrong width.
    assert tensor_scalar(w.tensor(DT_FLOAT, dims=(3,), float_val=[1, 2, 3])) is None
    assert tensor_scalar(w.tensor(DT_FLOAT, dims=(2,), float_val=[1])) is None
    assert tensor_scalar(w.tensor(DT_FLOAT)) is None
    assert tensor_scalar(w.tensor(DT_STRING, content=b"abcd")) is None
    assert tensor_scalar(w.tensor(DT_FLOAT, content=b"\x00\x00")) is None


def test_events_without_scalars_and_garbage() -> None:
    assert event_scalars(w.file_version()) == []
    ev = w.event(4, w.simple_value("loss", 0.5), w.tensor_value("text", w.tensor(DT_STRING, content=b"hi")),
                 w.tensor_value("acc", w.tensor(DT_FLOAT, float_val=[0.75])))
    assert event_scalars(ev) == [Scalar("loss", 4, 0.5, 1700000000.0), Scalar("acc", 4, 0.75, 1700000000.0)]
    with pytest.raises(DecodeError):
        event_scalars(b"\x0a\xff\x01")  # a length-delimited field longer than the data
    with pytest.raises(DecodeError):
        event_scalars(b"\x0b")  # wire type 3 (a group): not in Event


def _records(*payloads: bytes) -> bytes:
    return b"".join(w.record(p) for p in payloads)


def test_a_torn_last_record_is_waited_for() -> None:
    one, two = w.event(0, w.simple_value("a", 1)), w.event(1, w.simple_value("a", 2))
    whole = _records(w.file_version(), one, two)
    first_two = len(_records(w.file_version(), one))
    # Torn anywhere in the last record: its header, its data or its trailing CRC.
    for cut in (first_two + 5, first_two + 12, first_two + 20, len(whole) - 1):
        r = split_records(whole[:cut], 0, cut, final=True)
        assert r.payloads == (w.file_version(), one) and r.end == first_two and r.skipped == 0, cut
    # The rest arrives: read on from the cursor.
    r = split_records(whole[first_two:], first_two, len(whole), final=False)
    assert r.payloads == (two,) and r.end == len(whole)


def test_a_bad_data_crc_is_skipped_but_a_last_one_is_waited_for_until_final() -> None:
    good = [w.event(i, w.simple_value("a", i)) for i in range(3)]
    data = w.record(good[0]) + w.record(good[1], bad_data_crc=True) + w.record(good[2])
    r = split_records(data, 0, len(data), final=False)
    assert r.payloads == (good[0], good[2]) and r.skipped == 1 and r.end == len(data)
    # The file's last record failing its CRC: its data may still be landing; read it again.
    data = w.record(good[0]) + w.record(good[1], bad_data_crc=True)
    r = split_records(data, 0, len(data), final=False)
    assert r.payloads == (good[0],) and r.end == len(w.record(good[0])) and r.skipped == 0
    r = split_records(data, 0, len(data), final=True)  # the trial ended: it is corrupt for good
    assert r.payloads == (good[0],) and r.end == len(data) and r.skipped == 1


def test_a_bad_length_crc_stops_the_file() -> None:
    good = w.event(0, w.simple_value("a", 1))
    data = w.record(good) + w.record(good, bad_length_crc=True) + w.record(good)
    r = split_records(data, 0, len(data), final=True)
    assert r.payloads == (good,) and r.broken_at == len(w.record(good)) and r.end == r.broken_at


# ----- read_new over directories -----

def lines_of(chunk: object) -> list[dict[str, object]]:
    assert chunk is not None
    return [json.loads(line) for line in chunk.lines]  # type: ignore[attr-defined]


def test_read_new_walks_the_directory_in_order_and_follows_growth(tmp_path: Path) -> None:
    src = FileSource("TensorFlowEvent", tmp_path / "logs")
    assert read_new(src, None, False) is None  # not created yet
    (tmp_path / "logs" / "train").mkdir(parents=True)
    (tmp_path / "logs" / "test").mkdir()
    train = tmp_path / "logs" / "train" / "events.out.tfevents.1.host"
    test = tmp_path / "logs" / "test" / "events.out.tfevents.1.host"
    train.write_bytes(_records(w.file_version(), w.event(0, w.simple_value("accuracy", 0.5))))
    test.write_bytes(_records(w.file_version(), w.event(0, w.tensor_value("accuracy", w.tensor(DT_FLOAT, float_val=[0.25])))))
    (tmp_path / "logs" / "notes.txt").write_text("not an event file")
    chunk = read_new(src, None, False)
    name = "events.out.tfevents.1.host"
    assert lines_of(chunk) == [{"dir": "test", "file": name, "tag": "accuracy", "step": 0, "value": 0.25},
                               {"dir": "train", "file": name, "tag": "accuracy", "step": 0, "value": 0.5}]
    assert chunk is not None
    # A new record, torn: nothing until it is whole.
    rec = w.record(w.event(1, w.simple_value("accuracy", 0.75), w.simple_value("nan", float("nan"))))
    with open(train, "ab") as f:
        f.write(rec[:-2])
    again = read_new(src, chunk.cursor, False)
    assert again is not None and again.lines == () and again.cursor == chunk.cursor
    with open(train, "ab") as f:
        f.write(rec[-2:])
    # A non-finite value is no metric: not even a line.
    assert lines_of(read_new(src, again.cursor, False)) == [
        {"dir": "train", "file": name, "tag": "accuracy", "step": 1, "value": 0.75}]
    # A root-level file has dir "".
    (tmp_path / "logs" / "events.out.tfevents.2.host").write_bytes(_records(w.event(7, w.simple_value("loss", 2))))
    assert lines_of(read_new(src, None, False))[0] == {"dir": "", "file": "events.out.tfevents.2.host", "tag": "loss",
                                                      "step": 7, "value": 2.0}


def test_read_new_budget_a_big_record_and_a_shrunk_file(tmp_path: Path) -> None:
    src = FileSource("TensorFlowEvent", tmp_path)
    f = tmp_path / "events.out.tfevents.1.h"
    big = w.event(0, w.tensor_value("image", w.tensor(DT_STRING, content=b"x" * 5000)))
    small = [w.event(i, w.simple_value("a", i)) for i in range(1, 4)]
    f.write_bytes(_records(big, *small))
    # A budget smaller than the first record: it is read whole anyway, and reading goes on
    # past it (no scalar in it) until a scalar is found, so an empty chunk means "nothing new".
    chunk = read_new(src, None, False, max_bytes=100)
    assert chunk is not None and 1 <= len(chunk.lines) < 3  # some scalars, not all: 100 bytes a round
    steps = [x["step"] for x in lines_of(chunk)]
    cursor = chunk.cursor
    while True:
        c = read_new(src, cursor, False, max_bytes=100)
        assert c is not None
        if not c.lines:
            break
        steps += [x["step"] for x in lines_of(c)]
        cursor = c.cursor
    assert steps == [1, 2, 3]
    # Rewritten smaller than the offset: read from its start again.
    f.write_bytes(_records(w.event(9, w.simple_value("a", 9))))
    assert [x["step"] for x in lines_of(read_new(src, cursor, False))] == [9]


def test_a_corrupt_file_does_not_stop_the_others(tmp_path: Path) -> None:
    src = FileSource("TensorFlowEvent", tmp_path)
    bad = tmp_path / "a" / "events.out.tfevents.1.h"
    bad.parent.mkdir()
    ev = w.event(0, w.simple_value("a", 1))
    bad.write_bytes(w.record(ev) + w.record(ev, bad_length_crc=True) + w.record(ev))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "events.out.tfevents.1.h").write_bytes(_records(b"\x0b", ev))  # a non-Event record, then one
    chunk = read_new(src, None, True)
    assert [(x["dir"], x["step"]) for x in lines_of(chunk)] == [("a", 0), ("b", 0)]
    assert chunk is not None and isinstance(chunk.cursor, EventsCursor) and chunk.cursor.broken == {"a/events.out.tfevents.1.h"}
    with open(bad, "ab") as f:  # more data after the break is never framed
        f.write(w.record(ev))
    again = read_new(src, chunk.cursor, True)
    assert again is not None and again.lines == ()


# ----- File -----

def test_file_lines_partial_lines_and_rewrites(tmp_path: Path) -> None:
    f = tmp_path / "m.log"
    src = FileSource("File", f)
    assert read_new(src, None, False) is None
    f.write_bytes(b"accuracy=0.5\r\nacc")
    chunk = read_new(src, None, False)
    assert chunk is not None and chunk.lines == ("accuracy=0.5",)
    assert isinstance(chunk.cursor, FileCursor) and chunk.cursor.offset == 14
    last = read_new(src, chunk.cursor, True)  # the trial ended: its last line counts without a newline
    assert last is not None and last.lines == ("acc",)
    # Rewritten in place, same size, other content (a script writing only its latest value):
    # read from the start again, so the latest value is not missed.
    f.write_bytes(b"accuracy=0.7\r\nacc")
    again = read_new(src, last.cursor, True)
    assert again is not None and again.lines == ("accuracy=0.7", "acc")
    # Grown with the same start (appended): only the new part.
    with open(f, "ab") as out:
        out.write(b"\nloss=1\n")
    grown = read_new(src, again.cursor, False)
    assert grown is not None and grown.lines == ("", "loss=1")  # the rest of the 'acc' line, then a line
    # Truncated: from the start.
    f.write_bytes(b"x=1\n")
    assert read_new(src, grown.cursor, False).lines == ("x=1",)  # type: ignore[union-attr]
    # A line longer than a read is cut, not waited for for ever.
    f.write_bytes(b"y" * 50)
    long = read_new(src, None, False, max_bytes=20)
    assert long is not None and long.lines == ("y" * 20,)


# ----- structure first: CRCs only where they matter, large records walked from the file -----

def test_the_c_and_python_crcs_agree_and_chain() -> None:
    data = bytes(range(256)) * 40 + b"tail"
    assert crc32c_python(data) == crc32c(data) == w._crc32c(data)
    assert crc32c(data[1000:], crc32c(data[:1000])) == crc32c(data)
    assert crc32c_python(memoryview(data)[1000:], crc32c_python(data[:1000])) == crc32c(data)
    assert crc32c(memoryview(data)[5:9]) == crc32c(data[5:9])


def image_event(step: int, size: int, *more: bytes) -> bytes:
    """A TF1 image summary (Value.image = Image{height, width, colorspace, encoded_image_string})."""
    image = w.key(1, 0) + w.varint(28) + w.key(2, 0) + w.varint(28) + w.key(3, 0) + w.varint(1)
    image += w.length_delimited(4, bytes(range(256)) * (size // 256))
    return w.event(step, w.length_delimited(1, b"input") + w.length_delimited(4, image), *more)


def test_a_record_with_no_scalar_is_skipped_whatever_its_crc_a_scalar_one_is_not() -> None:
    scalars = [w.event(i, w.simple_value("a", i)) for i in range(3)]
    image = image_event(9, 1000)
    data = (w.record(scalars[0]) + w.record(image, bad_data_crc=True) + w.record(scalars[1], bad_data_crc=True)
            + w.record(scalars[2]))
    r = scan_records(data, 0, len(data), final=False)
    assert [(s.tag, s.step) for s in r.scalars] == [("a", 0), ("a", 2)]
    assert r.corrupt == 1 and r.end == len(data) and not r.waiting  # the scalar record, refused
    # Records that are no Event are still told apart: corrupt if their CRC fails, foreign if not.
    data = w.record(b"\x0b") + w.record(b"\x0b", bad_data_crc=True) + w.record(scalars[0])
    r = scan_records(data, 0, len(data), final=True)
    assert r.foreign == 1 and r.corrupt == 1 and "wire type 3" in r.foreign_error and len(r.scalars) == 1


def test_the_last_record_is_crc_checked_while_the_trial_runs_even_without_a_scalar() -> None:
    """Data visible after its length (some filesystems) may still turn into a scalar record:
    a last record failing its CRC is waited for until the trial ends, scalar or not."""
    first = w.record(w.event(0, w.simple_value("a", 1)))
    for last in (image_event(1, 1000), w.file_version(), b"\x00" * 40):
        data = first + w.record(last, bad_data_crc=True)
        r = scan_records(data, 0, len(data), final=False)
        assert r.waiting and r.end == len(first) and len(r.scalars) == 1
        r = scan_records(data, 0, len(data), final=True)
        assert not r.waiting and r.end == len(data)
    # Intact, it is passed over at once.
    data = first + w.record(image_event(1, 1000))
    assert scan_records(data, 0, len(data), final=False).end == len(data)


def test_a_large_record_is_walked_without_reading_its_image(tmp_path: Path) -> None:
    payload = image_event(5, 1 << 20)
    rec = record_of(payload)
    f = tmp_path / "events.out.tfevents.1.h"
    f.write_bytes(rec)
    asked: list[int] = []

    def read(offset: int, n: int) -> bytes:
        asked.append(n)
        with open(f, "rb") as fh:
            fh.seek(offset)
            return fh.read(n)

    r = scan_large_record(read, 0, len(rec), len(rec), final=True, head=rec[:100])
    assert r.scalars == () and r.end == len(rec) and not r.waiting
    assert sum(asked) < 20_000  # a page or two of a 1 MB record
    # The same record with scalars after its image (one Summary, as tf.summary.merge_all writes):
    # found, and its CRC (streamed through the file) checked.
    payload = image_event(5, 1 << 20, w.simple_value("loss", 0.25))
    for bad, found in ((False, [("loss", 5, 0.25)]), (True, [])):
        rec = record_of(payload, bad)
        f.write_bytes(rec)
        asked.clear()
        r = scan_large_record(read, 0, len(rec), len(rec), final=True, head=rec[:100])
        assert [(s.tag, s.step, s.value) for s in r.scalars] == found and r.corrupt == int(bad)
        assert sum(asked) >= len(payload)  # checking the CRC reads it all
    # The file shrinking under the reader is an I/O error (read again next time), not corruption.
    f.write_bytes(rec[:1000])
    with pytest.raises(ShortRead):
        scan_large_record(read, 0, len(rec), len(rec), final=True, head=rec[:100])


def record_of(payload: bytes, bad_data_crc: bool = False) -> bytes:
    """tfevent_writer.record for megabyte payloads (its bitwise CRC takes seconds on those);
    the CRC under test agrees with the writer's on the small data above."""
    header = struct.pack("<Q", len(payload))
    return (header + struct.pack("<I", masked_crc32c(header)) + payload
            + struct.pack("<I", masked_crc32c(payload) ^ int(bad_data_crc)))


@pytest.mark.parametrize("piece", [None, 1024])  # real pieces; pieces smaller than the image records
def test_read_new_skips_corrupt_images_and_reads_the_scalars_around_them(tmp_path: Path, piece: int | None,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[int] = []
    if piece:  # image records then go through scan_large_record
        monkeypatch.setattr(metric_files, "PIECE_BYTES", piece)

        def counted(*args: object, **kwargs: object) -> object:
            walked.append(1)
            return scan_large_record(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(metric_files, "scan_large_record", counted)
    src = FileSource("TensorFlowEvent", tmp_path)
    f = tmp_path / "events.out.tfevents.1.h"
    parts = [w.record(w.file_version())]
    for step in range(6):
        parts.append(w.record(image_event(step, 3000), bad_data_crc=step % 2 == 1))
        parts.append(w.record(w.event(step, w.simple_value("loss", step)), bad_data_crc=step == 4))
    f.write_bytes(b"".join(parts))
    chunk = read_new(src, None, False)
    assert [x["step"] for x in lines_of(chunk)] == [0, 1, 2, 3, 5]  # step 4's scalar record is corrupt
    assert chunk is not None and chunk.cursor.offsets[f.name] == f.stat().st_size  # type: ignore[attr-defined]
    # A large image record being written: waited for, then passed over; the scalar after it read.
    image = w.record(image_event(6, 5000))
    scalar = w.record(w.event(6, w.simple_value("loss", 6)))
    with open(f, "ab") as out:
        out.write(image[:2500])
    again = read_new(src, chunk.cursor, False)
    assert again is not None and again.lines == () and again.cursor == chunk.cursor
    with open(f, "ab") as out:
        out.write(image[2500:] + scalar[:10])
    again = read_new(src, again.cursor, False)
    assert again is not None and again.lines == ()
    with open(f, "ab") as out:
        out.write(scalar[10:])
    assert [x["step"] for x in lines_of(read_new(src, again.cursor, False))] == [6]
    assert bool(walked) == bool(piece)


def test_read_new_budget_over_large_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget counts records' sizes as before: a record larger than the budget is taken
    whole when it comes first, and reading goes on past images until a scalar is found."""
    monkeypatch.setattr(metric_files, "PIECE_BYTES", 1024)
    src = FileSource("TensorFlowEvent", tmp_path)
    f = tmp_path / "events.out.tfevents.1.h"
    scalar = [w.record(w.event(i, w.simple_value("a", i))) for i in range(4)]
    f.write_bytes(b"".join([w.record(image_event(0, 4000)), w.record(image_event(0, 4000)), scalar[0], scalar[1],
                            w.record(image_event(1, 4000)), scalar[2], scalar[3]]))
    steps: list[int] = []
    cursor = None
    chunks = 0
    while (c := read_new(src, cursor, True, max_bytes=100)) is not None and c.lines:
        steps += [x["step"] for x in lines_of(c)]
        cursor, chunks = c.cursor, chunks + 1
    assert len(scalar[0]) * 2 <= 100 < len(scalar[0]) * 3
    assert steps == [0, 1, 2, 3] and chunks == 2  # 100 bytes: two scalar records a call


def test_scalar_lines_are_exactly_compact_json(tmp_path: Path) -> None:
    """The lines are built by hand for speed: byte for byte what json.dumps gives."""
    tags = ['loss', 'a"b\\c', 'täg/ünï', 'tab\there', '\x01ctl', 'emoji 🙂', '\u2028sep']
    values = [0.1, 1e-7, 12345678.5, -0.0, 2.0 ** 70, 1 / 3]
    (tmp_path / "sub dir").mkdir()
    f = tmp_path / "sub dir" / "events.out.tfevents.1.\"q\""
    f.write_bytes(_records(*(w.event(step, w.tensor_value(tag, w.tensor(DT_DOUBLE, double_val=[v])))
                             for step, (tag, v) in enumerate(zip(tags, values * 2)))))
    f2 = tmp_path / "events.out.tfevents.2.h"
    f2.write_bytes(_records(w.event(-5, w.simple_value("neg", 0.5)), w.event(2 ** 62, w.simple_value("big", 1.5))))
    chunk = read_new(FileSource("TensorFlowEvent", tmp_path), None, True)
    assert chunk is not None
    expect = [json.dumps({"dir": "", "file": f2.name, "tag": t, "step": s, "value": v}, separators=(",", ":"),
                         ensure_ascii=False) for t, s, v in (("neg", -5, 0.5), ("big", 2 ** 62, 1.5))]
    expect += [json.dumps({"dir": "sub dir", "file": f.name, "tag": t, "step": s, "value": v}, separators=(",", ":"),
                          ensure_ascii=False) for s, (t, v) in enumerate(zip(tags, values * 2))]
    assert list(chunk.lines) == expect


def test_scan_records_keeps_exactly_the_scalars_of_intact_records() -> None:
    """Against the full-CRC path on a seeded mix: TF1/TF2 scalars, images, text, histograms-like
    tensors, records that are no Event, each intact or with a bad data CRC."""
    rng = random.Random(7)
    kinds = [lambda i: w.event(i, w.simple_value("loss", i / 7)),
             lambda i: w.event(i, w.tensor_value("acc", w.tensor(DT_FLOAT, float_val=[i / 3]))),
             lambda i: image_event(i, rng.choice([0, 300, 3000])),
             lambda i: w.event(i, w.tensor_value("text", w.tensor(DT_STRING, dims=(1,), content=b"hello"))),
             lambda i: w.event(i, w.tensor_value("hist", w.tensor(DT_DOUBLE, dims=(4, 3), double_val=[1.0] * 12))),
             lambda i: image_event(i, 500, w.simple_value("merged", i)),
             lambda i: b"\x0b" * (i % 3 + 1),
             lambda i: w.file_version()]
    for _ in range(20):
        data = b"".join(w.record(rng.choice(kinds)(i), bad_data_crc=rng.random() < 0.2) for i in range(30))
        full = split_records(data, 0, len(data), final=True)
        want: list[Scalar] = []
        for payload in full.payloads:
            try:
                want += event_scalars(payload)
            except DecodeError:
                pass
        got = scan_records(data, 0, len(data), final=True)
        assert got.scalars == tuple(want) and got.end == full.end == len(data)
