"""`autotune collect-metrics --kind File|TensorFlowEvent --path P`: the metrics collector's sidecar.

Runs in the ``autotune-metrics`` container of a trial pod (workloads/metrics_sidecar.py) and
relays what the training code writes to ``P`` to its own stdout, one line per line read:
File: the file's lines as they are; TensorFlowEvent: one JSON line per scalar of the event
files under the directory P (operator/metric_files.py decides the lines). The operator reads
this container's log (KubernetesExecutor.read_log) and parses the lines as local mode parses
the file itself, so both modes see the same lines.

It reads every ``--interval`` seconds (1 by default) what was added since, and prints only
complete lines, each marked with its position in the source (relay_marks.py: ``@KEY:GEN:INDEX
TEXT``), so the operator can drop what a restarted sidecar relays again. With ``--state-dir``
(the sidecar's own emptyDir, which outlives a restart of the container) it keeps its cursor
there after each print: a restarted sidecar relays the source from its start again, in the
generation its predecessor was in (the next one if the file was rewritten meanwhile). A File's
last line still without a newline, unchanged for one interval, is printed marked as
unfinished (the operator takes it only once the trial's container has ended: a pod kept alive
by a mesh proxy never stops this sidecar, so the final read below never happens there). On SIGTERM (the kubelet stops a native sidecar after the trial's containers
exited) or SIGINT it reads once more as a final read (a last line without a newline counts),
until nothing is left, and exits 0. A missing file or directory is waited for.

Nothing but relayed lines is printed: the container's log *is* the metrics stream, and a
diagnostic line such as ``retry=3`` could be read as a metric. Bad arguments are reported
(exit 2) before any line is relayed. When nothing was relayed, why (the path never created,
not readable by the sidecar's user, no event files) goes to the container's termination
message (``/dev/termination-log``, shown by ``kubectl describe pod``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import IO, Any, Callable

from autotune_operator.executors.base import LogChunk
from autotune_operator.metric_files import (FileSource, cursor_json, cursor_of_json, not_a_metrics_file, partial_line, read_new,
                                            replay_cursor)

KINDS = ("File", "TensorFlowEvent")
INTERVAL = 1.0
TERMINATION_LOG = "/dev/termination-log"
STATE_FILE = "cursor.json"

Reader = Callable[[Any, Any, bool], "LogChunk | None"]  # (source, cursor, final) -> chunk
Saver = Callable[[Any], None]  # keeps the cursor after each print
Peeker = Callable[[Any, Any], "str | None"]  # (source, cursor) -> the unfinished last line, marked


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", required=True, choices=KINDS, help="what the trial writes: a metrics file or TensorFlow event files")
    p.add_argument("--path", required=True, help="the file (File) or the directory of event files (TensorFlowEvent)")
    p.add_argument("--interval", type=float, default=INTERVAL, help="seconds between reads (default 1)")
    p.add_argument("--termination-log", default=TERMINATION_LOG,
                   help="when nothing was relayed, say why in this file if it exists (default: Kubernetes' "
                        "terminationMessagePath, /dev/termination-log)")
    p.add_argument("--state-dir", default="",
                   help="a writable directory that outlives a restart of this container (the sidecar's emptyDir): "
                        "where it keeps its cursor, so a restarted sidecar numbers its lines as before")


def _emit(out: IO[str], chunk: LogChunk) -> None:
    for line in chunk.lines:
        out.write(line + "\n")
    out.flush()


def relay(read: Reader, source: Any, out: IO[str], stop: threading.Event, interval: float = INTERVAL,
          cursor: Any = None, save: Saver | None = None, peek: Peeker | None = None) -> int:
    """Print what ``read`` returns until ``stop`` is set, then drain with final reads; the
    number of lines printed.

    ``read(source, cursor, final)`` follows Executor.read_log's contract (None: nothing to
    read yet or an I/O error; the cursor is kept and the next read tries again). ``cursor``:
    where to start (None: the start). ``save`` gets the cursor after each print (after it:
    a sidecar killed between the two prints the lines again, which their marks make harmless).
    ``peek``: the unfinished last line, printed once it stayed the same for one interval."""
    printed = 0
    seen: str | None = None  # the unfinished line the last idle pass saw
    shown: str | None = None  # ... and the one printed
    while not stop.is_set():
        chunk = read(source, cursor, False)
        # A chunk that did not move the cursor is not printed (a reader that did so would
        # have every pass print its lines again).
        if chunk is not None and chunk.lines and chunk.cursor != cursor:
            _emit(out, chunk)
            printed += len(chunk.lines)
            cursor = chunk.cursor
            if save is not None:
                save(cursor)
            continue  # a capped read: the rest at once
        if chunk is not None:
            cursor = chunk.cursor
        if peek is not None:
            line = peek(source, cursor)
            if line is not None and line == seen and line != shown:
                out.write(line + "\n")
                out.flush()
                shown = line
            seen = line
        stop.wait(interval)
    while True:  # the trial has ended: everything left, its last line even without a newline
        chunk = read(source, cursor, True)
        if chunk is None or not chunk.lines or chunk.cursor == cursor:
            return printed
        _emit(out, chunk)
        printed += len(chunk.lines)
        cursor = chunk.cursor
        if save is not None:
            save(cursor)


def load_cursor(state_dir: str, source: FileSource) -> Any:
    """Where this sidecar starts: a predecessor's generation (replay_cursor), else the start."""
    if not state_dir:
        return None
    try:
        doc = json.loads(Path(state_dir, STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # the first sidecar of this pod (or a damaged file: generation 0)
    return replay_cursor(source, cursor_of_json(doc))


def saver(state_dir: str) -> Saver | None:
    """Keeps the cursor in ``state_dir`` (written whole, then renamed: never half a file)."""
    if not state_dir:
        return None
    path = Path(state_dir, STATE_FILE)
    tmp = path.with_name(STATE_FILE + ".tmp")

    def save(cursor: Any) -> None:
        doc = cursor_json(cursor)
        if doc is None:
            return
        try:
            tmp.write_text(json.dumps(doc), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # best effort: without it a restarted sidecar starts at generation 0
    return save


def why_nothing(source: FileSource) -> str:
    """Why a source gave no line, as the sidecar's user sees it now (for the termination message)."""
    path, who = source.path, f"user {os.getuid()}"
    if not path.exists():
        return (f"{path} was never created in this pod: the trial writes its metrics there "
                f"(spec.metricsCollector.path; $AUTOTUNE_METRICS_PATH holds it)")
    if source.kind == "File":
        wrong = not_a_metrics_file(source)
        if wrong is not None:
            return wrong
        if not path.is_file():
            return f"{path} is not a file"
        if not os.access(path, os.R_OK):
            return f"{path} is not readable by {who} (the sidecar's): let others read it (mode 0644, umask 022)"
        return f"{path} is empty"
    if not path.is_dir():
        return f"{path} is not a directory: kind TensorFlowEvent reads the event files in a directory"
    if not os.access(path, os.R_OK | os.X_OK):
        return f"{path} is not readable by {who} (the sidecar's): let others read it (mode 0755, umask 022)"
    try:
        found = any(f.name.startswith("events.out.tfevents") for f in path.rglob("*"))
    except OSError as e:
        return f"cannot list {path}: {e}"
    if not found:
        return f"{path} holds no events.out.tfevents.* file (searched recursively)"
    return f"the event files under {path} held no scalar summary, or are not readable by {who} (the sidecar's)"


def _note(where: str, message: str) -> None:
    """Best effort: the termination message file exists in a container (not elsewhere)."""
    if not where or not os.path.exists(where):
        return
    try:
        with open(where, "w", encoding="utf-8") as f:
            f.write(message[:4000])  # Kubernetes keeps at most 4096 bytes
    except OSError:
        pass


def run(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    if not (args.interval > 0):
        print(f"autotune collect-metrics: --interval must be > 0 seconds, not {args.interval}", file=sys.stderr)
        return 2
    # Path("") is the working directory: a blank --path was waited for there for ever
    # (spec.metricsCollector.path refuses blank the same way).
    if not args.path.strip():
        print("autotune collect-metrics: --path must name the file (File) or the directory of event files "
              "(TensorFlowEvent) the trial writes, not be blank", file=sys.stderr)
        return 2
    # Silent: read_new logs I/O errors, and a log line here would be read as the trial's output.
    logging.disable(logging.CRITICAL)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    source = FileSource(args.kind, Path(args.path))

    def read(src: FileSource, cursor: Any, final: bool) -> LogChunk | None:
        return read_new(src, cursor, final, marked=True)

    try:
        printed = relay(read, source, out or sys.stdout, stop, args.interval,
                        load_cursor(args.state_dir, source), saver(args.state_dir), partial_line)
    except BrokenPipeError:  # nobody reads the output any more: nothing left to do
        return 0
    if not printed:
        _note(args.termination_log, f"autotune collect-metrics relayed nothing: {why_nothing(source)}")
    return 0
