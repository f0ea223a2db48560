"""What reading TensorBoard event files costs the TensorFlowEvent collector (not a test).

Usage: python bench/tfevents_speed.py [--scalars 200000] [--images 200] [--image-mb 1] [--repeat 3]

Writes two event files (with the tests' event-file encoder, valid CRCs):
- scalar-only: --scalars scalars, one event each, TF1 simple_value and TF2 tensor alternating;
- image-heavy: --images image records of --image-mb MB each (TF1 Image and TF2 image
  tensors alternating), with an event of two scalars after every tenth image;
then reads each whole with metric_files.read_new (what `autotune collect-metrics` and the local
executor call) and reports MB/s and scalars/s, medians over --repeat, for:
- read_new as it is, with the CRC-32C this install has (google-crc32c's C extension if
  installed, else the pure-Python fallback);
- read_new with the pure-Python CRC-32C (a child run with google_crc32c hidden), when the C
  extension is installed: what an install without the wheel gets;
- the old path (reference, below): every record's data CRC-checked with the table-driven
  pure-Python CRC and copied before decoding, as before the structure-first decoder. It decodes
  with today's decoder, so its figure is if anything better than the old code's was.
Prints a markdown table and writes it to bench/results/tfevents_speed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable


def hide_c_crc() -> None:
    """Make google_crc32c unimportable in this process (before tfevents is imported)."""
    sys.modules["google_crc32c"] = None  # type: ignore[assignment]


if "--child-pure-crc" in sys.argv:
    hide_c_crc()

from autotune_operator.metric_files import FileSource, read_new  # noqa: E402
from autotune_operator.tfevents import (CRC_IMPLEMENTATION, DT_FLOAT, HEADER_BYTES, crc32c_python, event_scalars,  # noqa: E402
                                        masked_crc32c)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests/
from tests.unit import tfevent_writer as w  # noqa: E402


# ----- event-file writing: the tests' encoder (tests/unit/tfevent_writer.py), written apart
# from the decoder under test; records framed here with the fast CRC (the writer's own CRC is
# bit-by-bit, far too slow for hundreds of megabytes) -----
ld = w.length_delimited
varint = w.varint


def record(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", masked_crc32c(header)) + payload + struct.pack("<I", masked_crc32c(payload))


def event(step: int, *values: bytes) -> bytes:
    return w.event(step, *values, wall_time=1.7e9 + step)


def tf1_scalar(tag: str, v: float) -> bytes:
    return w.simple_value(tag, v)


def tf2_scalar(tag: str, v: float) -> bytes:
    return w.tensor_value(tag, w.tensor(DT_FLOAT, float_val=[v]))


def tf1_image(tag: str, png: bytes) -> bytes:
    image = varint(1 << 3) + varint(28) + varint(2 << 3) + varint(28) + varint(3 << 3) + varint(1) + ld(4, png)
    return ld(1, tag.encode()) + ld(4, image)


def tf2_image(tag: str, png: bytes) -> bytes:
    # A DT_STRING tensor of shape [3]: width, height, the encoded image (tf.summary.image).
    tensor = (varint(1 << 3) + varint(7) + ld(2, ld(2, varint(1 << 3) + varint(3)))
              + ld(8, b"28") + ld(8, b"28") + ld(8, png))
    return ld(1, tag.encode()) + ld(9, ld(1, ld(1, b"images"))) + ld(8, tensor)


def write_scalar_only(path: Path, n: int) -> int:
    with open(path, "wb") as f:
        for i in range(n):
            v = 1.0 / (i + 1)
            f.write(record(event(i, tf1_scalar("loss", v) if i % 2 else tf2_scalar("accuracy", 1 - v))))
    return n


def write_image_heavy(path: Path, images: int, image_bytes: int) -> int:
    rng = random.Random(0)
    # A few distinct image records, written over and over (their CRCs are computed once).
    pngs = [rng.randbytes(image_bytes) for _ in range(2)]
    kinds = [record(event(s, (tf1_image if s % 2 else tf2_image)("input/image", pngs[s % 2]))) for s in range(4)]
    scalars = 0
    with open(path, "wb") as f:
        for i in range(images):
            f.write(kinds[i % len(kinds)])
            if i % 10 == 9:
                f.write(record(event(i, tf1_scalar("loss", 1.0 / (i + 1)), tf2_scalar("accuracy", i / images))))
                scalars += 2
    return scalars


# ----- the two readers -----

def read_all(directory: Path) -> int:
    """Every scalar line read_new gives, the way the sidecar's drain reads: until an empty chunk."""
    src, cursor, n = FileSource("TensorFlowEvent", directory), None, 0
    while (chunk := read_new(src, cursor, final=True)) is not None and chunk.lines:
        n += len(chunk.lines)
        cursor = chunk.cursor
    return n


def reference_read_all(directory: Path, max_bytes: int = 4 << 20) -> int:
    """The old path: read up to max_bytes, frame the records, check every record's data CRC with
    the table-driven pure-Python CRC, copy it, decode it, make its lines."""
    def masked(data: bytes | memoryview) -> int:
        c = crc32c_python(data)
        return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    n = 0
    for path in sorted(directory.glob("*tfevents*")):
        size, offset = path.stat().st_size, 0
        with open(path, "rb") as f:
            while offset < size:
                f.seek(offset)
                data = f.read(min(max_bytes, size - offset))
                pos = 0
                while len(data) - pos >= HEADER_BYTES:
                    (length,) = struct.unpack_from("<Q", data, pos)
                    assert masked(data[pos:pos + 8]) == struct.unpack_from("<I", data, pos + 8)[0]
                    total = HEADER_BYTES + length + 4
                    if len(data) - pos < total:
                        if pos == 0:
                            f.seek(offset)
                            data = f.read(total)  # one record longer than a read: read it whole
                            continue
                        break
                    body = memoryview(data)[pos + HEADER_BYTES:pos + total - 4]
                    if masked(body) == struct.unpack_from("<I", data, pos + total - 4)[0]:
                        for s in event_scalars(bytes(body)):
                            json.dumps({"dir": "", "file": path.name, "tag": s.tag, "step": s.step, "value": s.value},
                                       separators=(",", ":"))
                            n += 1
                    pos += total
                offset += pos
    return n


def median_seconds(fn: Callable[[], int], expect: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        got = fn()
        times.append(time.perf_counter() - t0)
        assert got == expect, (got, expect)
    return statistics.median(times)


def measure(workdir: Path, reference: bool, repeat: int) -> dict[str, dict[str, float]]:
    """Seconds per whole read of each file, by reader."""
    meta = json.loads((workdir / "meta.json").read_text())
    out: dict[str, dict[str, float]] = {}
    for name in ("scalar-only", "image-heavy"):
        d, expect = workdir / name, meta[name]["scalars"]
        out[name] = {"read_new": median_seconds(lambda: read_all(d), expect, repeat)}
        if reference:
            # The old path over 200 MB takes tens of seconds: one run of it is enough.
            reps = 1 if name == "image-heavy" else repeat
            out[name]["reference"] = median_seconds(lambda: reference_read_all(d), expect, reps)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scalars", type=int, default=200_000)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--image-mb", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child-pure-crc", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_pure_crc:
        print(json.dumps(measure(Path(args.child_pure_crc), False, args.repeat)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        meta: dict[str, dict[str, int]] = {}
        for name in ("scalar-only", "image-heavy"):
            (work / name).mkdir()
        f1 = work / "scalar-only" / "events.out.tfevents.1.bench"
        f2 = work / "image-heavy" / "events.out.tfevents.1.bench"
        meta["scalar-only"] = {"scalars": write_scalar_only(f1, args.scalars), "bytes": 0}
        meta["image-heavy"] = {"scalars": write_image_heavy(f2, args.images, int(args.image_mb * (1 << 20))),
                               "bytes": 0}
        for name, f in (("scalar-only", f1), ("image-heavy", f2)):
            meta[name]["bytes"] = f.stat().st_size
            f.read_bytes()  # in the page cache for every reader alike
        (work / "meta.json").write_text(json.dumps(meta))
        results = measure(work, True, args.repeat)
        pure: dict[str, dict[str, float]] | None = None
        if CRC_IMPLEMENTATION != "pure Python":
            child = subprocess.run([sys.executable, __file__, "--child-pure-crc", str(work), "--repeat",
                                    str(args.repeat)], check=True, capture_output=True, text=True,
                                   env={**os.environ, "PYTHONSAFEPATH": "1"})
            pure = json.loads(child.stdout.strip().splitlines()[-1])
    rows = ["| file | reader | MB/s | scalars/s | seconds | vs. old path |", "|---|---|---:|---:|---:|---:|"]
    for name in ("scalar-only", "image-heavy"):
        mb, n = meta[name]["bytes"] / 1e6, meta[name]["scalars"]
        what = f"{name}: {mb:,.0f} MB, {n:,} scalars"
        old = results[name]["reference"]
        readers = [(f"read_new, CRC-32C by {CRC_IMPLEMENTATION}", results[name]["read_new"])]
        if pure is not None:
            readers.append(("read_new, CRC-32C by pure Python (no wheel)", pure[name]["read_new"]))
        readers.append(("old path: every record CRC-checked (pure Python), reference", old))
        for reader, t in readers:
            rows.append(f"| {what} | {reader} | {mb / t:,.1f} | {n / t:,.0f} | {t:.3f} | {old / t:,.1f}x |")
            what = ""
    table = "\n".join(rows)
    header = (f"# TensorFlowEvent collector: reading event files\n\n`python bench/tfevents_speed.py --scalars "
              f"{args.scalars} --images {args.images} --image-mb {args.image_mb} --repeat {args.repeat}` "
              f"(medians of {args.repeat}; the old path over the image-heavy file: one run)\n\n")
    print(table)
    out = Path(__file__).resolve().parent / "results" / "tfevents_speed.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(header + table + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
