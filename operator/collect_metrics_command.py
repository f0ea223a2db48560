"""`autotune collect-metrics --kind File|TensorFlowEvent --path P`: the metrics collector's sidecar.

Runs in the ``autotune-metrics`` container of a trial pod (workloads/metrics_sidecar.py) and
relays what the training code writes to ``P`` to its own stdout, one line per line read:
File: the file's lines as they are; TensorFlowEvent: one JSON line per scalar of the event
files under the directory P (operator/metric_files.py decides the lines). The operator reads
this container's log (KubernetesExecutor.read_log) and parses the lines as local mode parses
the file itself, so both modes see the same lines.

It reads every ``--interval`` seconds (1 by default) what was added since, and prints only
complete lines. On SIGTERM (the kubelet stops a native sidecar after the trial's containers
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
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import IO, Any, Callable

from autotune_operator.executors.base import LogChunk
from autotune_operator.metric_files import FileSource, read_new

KINDS = ("File", "TensorFlowEvent")
INTERVAL = 1.0
TERMINATION_LOG = "/dev/termination-log"

Reader = Callable[[Any, Any, bool], "LogChunk | None"]  # (source, cursor, final) -> chunk


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", required=True, choices=KINDS, help="what the trial writes: a metrics file or TensorFlow event files")
    p.add_argument("--path", required=True, help="the file (File) or the directory of event files (TensorFlowEvent)")
    p.add_argument("--interval", type=float, default=INTERVAL, help="seconds between reads (default 1)")
    p.add_argument("--termination-log", default=TERMINATION_LOG,
                   help="when nothing was relayed, say why in this file if it exists (default: Kubernetes' "
                        "terminationMessagePath, /dev/termination-log)")


def _emit(out: IO[str], chunk: LogChunk) -> None:
    for line in chunk.lines:
        out.write(line + "\n")
    out.flush()


def relay(read: Reader, source: Any, out: IO[str], stop: threading.Event, interval: float = INTERVAL) -> int:
    """Print what ``read`` returns until ``stop`` is set, then drain with final reads; the
    number of lines printed.

    ``read(source, cursor, final)`` follows Executor.read_log's contract (None: nothing to
    read yet or an I/O error; the cursor is kept and the next read tries again)."""
    cursor: Any = None
    printed = 0
    while not stop.is_set():
        chunk = read(source, cursor, False)
        # A chunk that did not move the cursor is not printed (a reader that did so would
        # have every pass print its lines again).
        if chunk is not None and chunk.lines and chunk.cursor != cursor:
            _emit(out, chunk)
            printed += len(chunk.lines)
            cursor = chunk.cursor
            continue  # a capped read: the rest at once
        if chunk is not None:
            cursor = chunk.cursor
        stop.wait(interval)
    while True:  # the trial has ended: everything left, its last line even without a newline
        chunk = read(source, cursor, True)
        if chunk is None or not chunk.lines or chunk.cursor == cursor:
            return printed
        _emit(out, chunk)
        printed += len(chunk.lines)
        cursor = chunk.cursor


def why_nothing(source: FileSource) -> str:
    """Why a source gave no line, as the sidecar's user sees it now (for the termination message)."""
    path, who = source.path, f"user {os.getuid()}"
    if not path.exists():
        return (f"{path} was never created in this pod: the trial writes its metrics there "
                f"(spec.metricsCollector.path; $AUTOTUNE_METRICS_PATH holds it)")
    if source.kind == "File":
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
    # Silent: read_new logs I/O errors, and a log line here would be read as the trial's output.
    logging.disable(logging.CRITICAL)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    source = FileSource(args.kind, Path(args.path))
    try:
        printed = relay(read_new, source, out or sys.stdout, stop, args.interval)
    except BrokenPipeError:  # nobody reads the output any more: nothing left to do
        return 0
    if not printed:
        _note(args.termination_log, f"autotune collect-metrics relayed nothing: {why_nothing(source)}")
    return 0
