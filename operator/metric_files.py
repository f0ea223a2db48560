"""Reading the metrics files a trial writes (spec.metricsCollector kind File or TensorFlowEvent).

One reader for both modes: the local executor calls :func:`read_new` on the trial's own path,
and on a cluster the ``autotune collect-metrics`` sidecar calls it in the trial's pod and
prints the lines, which the controller reads as the sidecar's log. Either way the controller
gets lines (``LogChunk``, the contract of ``Executor.read_log``) and parses them
(operator/metric_parsers.py):

- File: the file's text lines as they are (TEXT ``name=value`` or JSON lines).
- TensorFlowEvent: one line per scalar of the event files under the directory, compact JSON
  ``{"dir": "train", "file": "events.out.tfevents...", "tag": "accuracy", "step": 3, "value": 0.91}``,
  ``dir`` being the event file's directory relative to the watched one ("" for itself): what
  Katib's naming rule (``train/accuracy``) needs. Files are read in sorted order of their
  relative paths.

Nothing here raises for I/O errors: a file that is not there yet, or cannot be read now, gives
None (logged) and the caller tries again with the same cursor.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _json_str  # what json.dumps(ensure_ascii=False) uses
from pathlib import Path
from typing import Any, Literal, Mapping

from autotune_operator.executors.base import LogChunk, complete_lines
from autotune_operator.relay_marks import FILE_KEY, key_of, mark
from autotune_operator.tfevents import HEADER_BYTES, RecordScan, is_event_file, scan_large_record, scan_records

log = logging.getLogger(__name__)

READ_BYTES = 4 << 20  # at most this much per call (the rest comes next call)
# Event files are read in pieces this large at most; a record larger (an image, a graph) is
# walked from the file (tfevents.scan_large_record), its payload never read. A piece starts at
# FIRST_PIECE_BYTES and grows while records are small.
PIECE_BYTES = 256 << 10
FIRST_PIECE_BYTES = 8 << 10
TAIL_BYTES = 64  # of a File's content before the cursor, to notice the file was rewritten
MAX_EVENT_FILES = 4096  # under one directory; more is no trial's TensorBoard log


@dataclass(frozen=True)
class FileSource:
    kind: Literal["File", "TensorFlowEvent"]
    path: Path  # the file (File) or directory (TensorFlowEvent), already resolved


def file_source(kind: str, path: Path) -> FileSource:
    """The source of a collector of kind File or TensorFlowEvent (ValueError for another)."""
    if kind == "File":
        return FileSource("File", path)
    if kind == "TensorFlowEvent":
        return FileSource("TensorFlowEvent", path)
    raise ValueError(f"kind {kind} reads no files")


def not_a_metrics_file(source: FileSource) -> str | None:
    """Why a File source can never be read, in the words its trial's message and the
    sidecar's termination message both use; None when it is not a directory."""
    if source.kind == "File" and source.path.is_dir():
        return f"{source.path} is a directory, not a metrics file"
    return None


@dataclass(frozen=True)
class FileCursor:
    """Where a File was read to: the offset of the first unread byte, and the bytes just
    before it (a file rewritten from its start no longer holds them there)."""

    offset: int
    tail: bytes = b""
    # The file's generation (one more each time it was found rewritten) and how many of its
    # lines in this generation were read: the positions of relay_marks (the sidecar's marks).
    gen: int = 0
    index: int = 0


@dataclass(frozen=True)
class EventsCursor:
    """Where each event file (by path relative to the directory) was read to."""

    offsets: Mapping[str, int] = field(default_factory=dict)
    # Files whose framing broke at their offset (a length failing its CRC): not read again
    # unless they shrink (rewritten).
    broken: frozenset[str] = frozenset()
    # Per file: its generation (one more each time it shrank) and how many scalar lines of
    # this generation were read (relay_marks positions).
    gens: Mapping[str, int] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)


def read_new(source: FileSource, cursor: Any, final: bool, max_bytes: int = READ_BYTES,
             marked: bool = False) -> LogChunk | None:
    """What the trial wrote after ``cursor`` (None: from the start), as lines. Only complete
    lines (File) or records (TensorFlowEvent), unless ``final`` (the trial ended: a File's last
    line counts without its newline). None when nothing exists yet or on an I/O error.
    ``marked``: each line carries its position (relay_marks; the sidecar's output)."""
    if source.kind == "File":
        return _read_file(source.path, cursor if isinstance(cursor, FileCursor) else None, final, max_bytes, marked)
    return _read_events(source.path, cursor if isinstance(cursor, EventsCursor) else None, final, max_bytes, marked)


PARTIAL_BYTES = 64 << 10  # an unterminated last line longer than this is not shown early


def partial_line(source: FileSource, cursor: Any) -> str | None:
    """A File's unterminated last line after ``cursor``, marked as such (relay_marks), when
    everything before it was read; None otherwise (and for event files)."""
    if source.kind != "File" or not isinstance(cursor, FileCursor):
        return None
    try:
        with open(source.path, "rb") as f:
            if os.fstat(f.fileno()).st_size < cursor.offset or _tail_changed(f, cursor.offset, cursor.tail):
                return None  # rewritten: the next read starts again
            f.seek(cursor.offset)
            data = f.read(PARTIAL_BYTES + 1)
    except OSError:
        return None
    if not data or len(data) > PARTIAL_BYTES or b"\n" in data:
        return None
    text = data.decode("utf-8", errors="replace").removesuffix("\r")
    return mark(FILE_KEY, cursor.gen, cursor.index, text, partial=True)


def replay_cursor(source: FileSource, saved: Any) -> Any:
    """Where a restarted sidecar starts: the source's start again (see relay_marks), in the
    generation its predecessor was in (``saved``: that one's cursor), or the next one when
    the file no longer holds what it had read (rewritten while no sidecar ran)."""
    if isinstance(saved, FileCursor) and source.kind == "File":
        try:
            with open(source.path, "rb") as f:
                same = os.fstat(f.fileno()).st_size >= saved.offset and not _tail_changed(f, saved.offset, saved.tail)
        except OSError:
            same = saved.offset == 0
        return FileCursor(0, b"", saved.gen if same else saved.gen + 1, 0)
    if isinstance(saved, EventsCursor) and source.kind == "TensorFlowEvent":
        gens = {}
        for rel, gen in {**{r: 0 for r in saved.offsets}, **saved.gens}.items():
            try:
                shrank = (source.path / rel).stat().st_size < saved.offsets.get(rel, 0)
            except OSError:
                shrank = False
            gens[rel] = gen + 1 if shrank else gen
        return EventsCursor({}, frozenset(), gens, {})
    return None


def cursor_json(cursor: Any) -> dict[str, Any] | None:
    """A cursor as JSON (the sidecar keeps it across its restarts); None for no cursor."""
    if isinstance(cursor, FileCursor):
        return {"kind": "File", "offset": cursor.offset, "tail": cursor.tail.hex(), "gen": cursor.gen,
                "index": cursor.index}
    if isinstance(cursor, EventsCursor):
        return {"kind": "TensorFlowEvent", "offsets": dict(cursor.offsets), "gens": dict(cursor.gens)}
    return None


def cursor_of_json(doc: Any) -> Any:
    """The cursor ``cursor_json`` gave (None when ``doc`` is not one: a damaged file)."""
    try:
        if doc.get("kind") == "File":
            return FileCursor(int(doc["offset"]), bytes.fromhex(doc["tail"]), int(doc["gen"]), int(doc["index"]))
        if doc.get("kind") == "TensorFlowEvent":
            return EventsCursor({str(k): int(v) for k, v in doc["offsets"].items()}, frozenset(),
                                {str(k): int(v) for k, v in doc["gens"].items()}, {})
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return None


# ----- File -----

def _read_file(path: Path, cursor: FileCursor | None, final: bool, max_bytes: int, marked: bool = False) -> LogChunk | None:
    start = cursor.offset if cursor else 0
    tail = cursor.tail if cursor else b""
    gen, index = (cursor.gen, cursor.index) if cursor else (0, 0)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if start and (size < start or _tail_changed(f, start, tail)):
                # Rewritten (truncated, or replaced by other content): read it again from its
                # start. Its values count again, as later steps: the last value stays right.
                log.info("metrics file %s was rewritten; reading it from its start", path)
                start, tail, gen, index = 0, b"", gen + 1, 0
            f.seek(start)
            data = f.read(max_bytes + 1)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        # A directory is waited for as a missing file is (the trial may replace it); its
        # reader says why once (not_a_metrics_file), not a warning on every read.
        return None
    except OSError as e:
        log.warning("cannot read the metrics file %s: %s", path, e)
        return None
    lines, end, unterminated = complete_lines(data, max_bytes, final)
    new_tail = (tail + data[:end])[-TAIL_BYTES:]
    if marked:
        # The sidecar's last line without a newline keeps its '+' (relay_marks): the operator
        # then knows it is one, and drops it if the trial was killed (controller._collect).
        lines = tuple(mark(FILE_KEY, gen, index + k, line, partial=unterminated and k == len(lines) - 1)
                      for k, line in enumerate(lines))
    return LogChunk(lines, FileCursor(start + end, new_tail, gen, index + len(lines)), unterminated)


def _tail_changed(f: Any, start: int, tail: bytes) -> bool:
    if not tail:
        return False
    f.seek(start - len(tail))
    return bool(f.read(len(tail)) != tail)


# ----- TensorFlowEvent -----

def _event_files(root: Path) -> list[str] | None:
    """Relative paths of the event files under ``root``, sorted; None if it is not there."""
    if not root.is_dir():
        return None
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: log.warning("cannot list %s: %s", root, e)):
        dirnames.sort()
        for name in filenames:
            if is_event_file(name):
                out.append(Path(dirpath, name).relative_to(root).as_posix())
        if len(out) >= MAX_EVENT_FILES:
            log.warning("more than %d event files under %s; reading the first", MAX_EVENT_FILES, root)
            break
    return sorted(out)[:MAX_EVENT_FILES]


def _read_events(root: Path, cursor: EventsCursor | None, final: bool, max_bytes: int,
                 marked: bool = False) -> LogChunk | None:
    try:
        files = _event_files(root)
    except OSError as e:
        log.warning("cannot list the event files under %s: %s", root, e)
        return None
    if files is None:
        return None
    offsets = dict(cursor.offsets) if cursor else {}
    broken = set(cursor.broken) if cursor else set()
    # (generations, counts, marked): _emit numbers each file's scalars (relay_marks).
    marks = Marks(dict(cursor.gens) if cursor else {}, dict(cursor.counts) if cursor else {}, marked)
    lines: list[str] = []
    # Rounds of at most max_bytes, until some scalar is found or nothing is left: a chunk
    # with no line means "nothing new" to callers (an ended trial's drain stops there), so
    # megabytes of histograms or images before the next scalar must not end it early.
    while not lines:
        before = dict(offsets)
        budget = max_bytes
        for rel in files:
            if budget <= 0:
                break
            try:
                used = _read_event_file(root, rel, offsets, broken, final, budget, lines, marks)
            except OSError as e:
                log.warning("cannot read the event file %s: %s", root / rel, e)
                continue  # the others are still read; this one again next time from its offset
            budget -= used
        if offsets == before:
            break
    return LogChunk(tuple(lines), EventsCursor(offsets, frozenset(broken), marks.gens, marks.counts))


@dataclass
class Marks:
    """Per event file: its generation and the scalar lines read of it; whether lines carry them."""

    gens: dict[str, int]
    counts: dict[str, int]
    marked: bool


def _read_event_file(root: Path, rel: str, offsets: dict[str, int], broken: set[str], final: bool,
                     budget: int, lines: list[str], marks: Marks | None = None) -> int:
    """Reads ``rel`` from its offset (updating ``offsets``/``broken`` as it goes, so an error
    midway loses nothing), appending its scalars' lines; returns the bytes of budget used.

    Records are consumed while they end within ``budget`` bytes of the offset (the first one
    whole whatever its size). The file is read in pieces starting small and growing while
    records are small: a record larger than a piece (an image, a graph) is walked from the
    file by scan_large_record, which reads its structure's few pages and not its payload."""
    path = root / rel
    start = offsets.get(rel, 0)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < start:
            log.info("event file %s shrank; reading it from its start", path)
            start = 0
            offsets[rel] = 0
            broken.discard(rel)
            if marks is not None:
                marks.gens[rel], marks.counts[rel] = marks.gens.get(rel, 0) + 1, 0
        if rel in broken or size - start < HEADER_BYTES:
            return 0
        limit = start + min(budget, size - start)  # no record ending past this, but the first

        def read_at(offset: int, n: int) -> bytes:
            f.seek(offset)
            return f.read(n)

        pos = start
        piece = FIRST_PIECE_BYTES
        at_least = 0  # the size of a record to read whole next
        while at_least or limit - pos >= HEADER_BYTES:
            want = max(min(piece, limit - pos), at_least)
            data = read_at(pos, want)
            scan = scan_records(data, pos, size, final)
            _emit(path, rel, scan, lines, offsets, broken, marks)
            read_from, pos, at_least = pos, scan.end, 0
            if scan.broken_at is not None or scan.waiting or len(data) < want:
                break  # corrupt from here, a record still being written, or the file shrank meanwhile
            if scan.needs is None:
                piece = min(piece * 4, PIECE_BYTES)
                continue
            if pos + scan.needs > limit and pos > start:
                break  # over this call's budget: the next call reads it
            if scan.needs <= PIECE_BYTES:
                at_least = scan.needs
                continue
            big = scan_large_record(read_at, pos, scan.needs, size, final, memoryview(data)[pos - read_from:])
            _emit(path, rel, big, lines, offsets, broken, marks)
            if big.waiting:
                break
            pos, piece = big.end, FIRST_PIECE_BYTES  # what follows an image is often another image
    return max(pos - start, limit - start)


def _emit(path: Path, rel: str, scan: RecordScan, lines: list[str], offsets: dict[str, int], broken: set[str],
          marks: Marks | None = None) -> None:
    """A scan's scalars as lines, its end as the file's offset, and its troubles logged."""
    if scan.broken_at is not None:
        broken.add(rel)
        log.warning("event file %s is corrupt at byte %d (a record length fails its CRC); the rest of it "
                    "is not read", path, scan.broken_at)
    if scan.corrupt:
        log.warning("event file %s: %d record(s) failed their CRC and were skipped", path, scan.corrupt)
    if scan.foreign:
        log.warning("event file %s: %d record(s) are no Event (%s); skipped", path, scan.foreign, scan.foreign_error)
    if scan.scalars:
        directory, _, name = rel.rpartition("/")
        # The compact JSON json.dumps(..., separators=(",", ":"), ensure_ascii=False) gives, built
        # by hand (a tenth of a scalar's cost): the same string encoder, and a finite float's repr.
        prefix = f'{{"dir":{_json_str(directory)},"file":{_json_str(name)},"tag":'
        new = [f'{prefix}{_json_str(s.tag)},"step":{int(s.step)!r},"value":{float(s.value)!r}}}'
               for s in scan.scalars if math.isfinite(s.value)]
        if marks is not None:
            first = marks.counts.get(rel, 0)
            marks.counts[rel] = first + len(new)
            if marks.marked:
                key, gen = key_of(rel), marks.gens.get(rel, 0)
                new = [mark(key, gen, first + k, line) for k, line in enumerate(new)]
        lines.extend(new)
    offsets[rel] = scan.end
