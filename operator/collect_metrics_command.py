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
(exit 2) before any line is relayed.
"""

from __future__ import annotations

import argparse
import logging
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

Reader = Callable[[Any, Any, bool], "LogChunk | None"]  # (source, cursor, final) -> chunk


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", required=True, choices=KINDS, help="what the trial writes: a metrics file or TensorFlow event files")
    p.add_argument("--path", required=True, help="the file (File) or the directory of event files (TensorFlowEvent)")
    p.add_argument("--interval", type=float, default=INTERVAL, help="seconds between reads (default 1)")


def _emit(out: IO[str], chunk: LogChunk) -> None:
    for line in chunk.lines:
        out.write(line + "\n")
    out.flush()


def relay(read: Reader, source: Any, out: IO[str], stop: threading.Event, interval: float = INTERVAL) -> None:
    """Print what ``read`` returns until ``stop`` is set, then drain with final reads.

    ``read(source, cursor, final)`` follows Executor.read_log's contract (None: nothing to
    read yet or an I/O error; the cursor is kept and the next read tries again)."""
    cursor: Any = None
    while not stop.is_set():
        chunk = read(source, cursor, False)
        # A chunk that did not move the cursor is not printed (a reader that did so would
        # have every pass print its lines again).
        if chunk is not None and chunk.lines and chunk.cursor != cursor:
            _emit(out, chunk)
            cursor = chunk.cursor
            continue  # a capped read: the rest at once
        if chunk is not None:
            cursor = chunk.cursor
        stop.wait(interval)
    while True:  # the trial has ended: everything left, its last line even without a newline
        chunk = read(source, cursor, True)
        if chunk is None or not chunk.lines or chunk.cursor == cursor:
            return
        _emit(out, chunk)
        cursor = chunk.cursor


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
        relay(read_new, source, out or sys.stdout, stop, args.interval)
    except BrokenPipeError:  # nobody reads the output any more: nothing left to do
        return 0
    return 0
