"""`autotune collect-metrics`, the File/TensorFlowEvent collectors' sidecar, as a real process:
it relays what a trial writes while it writes it, and on SIGTERM reads to the end and exits 0."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autotune_operator.collect_metrics_command import relay
from autotune_operator.executors.base import LogChunk
from autotune_operator.metric_files import FileSource, read_new
from autotune_operator.relay_marks import Taken, take


def autotune_cmd() -> list[str]:
    exe = shutil.which("autotune")
    return [exe] if exe else [sys.executable, "-m", "autotune_operator.cli"]


class Lines:
    """The process's stdout, line by line, collected by a thread: ``raw`` as printed (each
    line marked with its position, relay_marks.py), ``lines`` as the operator takes them."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.raw: list[str] = []
        self.lines: list[str] = []
        self.taken = Taken()
        self._t = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._t.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.raw.append(line.rstrip("\n"))
            new, self.taken = take([self.raw[-1]], self.taken)
            self.lines.extend(new)

    def wait_for(self, n: int, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.lines) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.lines)

    def wait_for_raw(self, line: str, timeout: float = 30) -> list[str]:
        """Until ``line`` was printed (polled: a loaded machine relays later, not never)."""
        deadline = time.monotonic() + timeout
        while line not in self.raw and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.raw)

    def join(self) -> list[str]:
        """Every line, as the operator's final read (the trial's container ended) takes them."""
        self._t.join(10)
        new, self.taken = take([], self.taken, final=True)
        self.lines.extend(new)
        return list(self.lines)


def start(kind: str, path: Path) -> tuple[subprocess.Popen[str], Lines]:
    proc = subprocess.Popen([*autotune_cmd(), "collect-metrics", "--kind", kind, "--path", str(path),
                             "--interval", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc, Lines(proc)


def test_file_lines_are_relayed_as_written_and_the_last_one_on_sigterm(tmp_path):
    path = tmp_path / "katib" / "metrics.log"  # the directory does not exist yet: waited for
    proc, out = start("File", path)
    try:
        time.sleep(0.5)
        path.parent.mkdir()
        with open(path, "w") as f:
            for epoch in range(3):
                f.write(f"epoch={epoch} accuracy=0.{epoch + 5}\n")
                f.flush()
                # Each line is printed while the trial goes on writing (not only at the end).
                assert out.wait_for(epoch + 1)[-1] == f"epoch={epoch} accuracy=0.{epoch + 5}"
            f.write("accuracy=0.91")  # the trial's last line, without a newline: shown as unfinished...
            f.flush()
            assert out.wait_for_raw("@-:0:3+ accuracy=0.91")[-1] == "@-:0:3+ accuracy=0.91"
            # ...and held back (taken only once the trial's container ended: relay_marks)
            assert len(out.lines) == 3
        proc.send_signal(signal.SIGTERM)  # ...until the kubelet stops the sidecar
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out.join() == ["epoch=0 accuracy=0.5", "epoch=1 accuracy=0.6", "epoch=2 accuracy=0.7", "accuracy=0.91"]
    # Still marked unfinished after the final read: the operator drops it if the trial was killed.
    assert out.raw[-1] == "@-:0:3+ accuracy=0.91" and out.taken.unterminated
    assert proc.stderr is not None and proc.stderr.read() == ""  # nothing but the relayed lines


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    c = _crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _event(step: int, tag: str, value: float) -> bytes:
    """A TFRecord holding Event{step, summary{value{tag, simple_value}}} (TF1 layout)."""
    t = tag.encode()
    val = b"\x0a" + _varint(len(t)) + t + b"\x15" + struct.pack("<f", value)
    summary = b"\x0a" + _varint(len(val)) + val
    ev = b"\x09" + struct.pack("<d", time.time()) + b"\x10" + _varint(step) + b"\x2a" + _varint(len(summary)) + summary
    head = struct.pack("<Q", len(ev))
    return head + struct.pack("<I", _masked(head)) + ev + struct.pack("<I", _masked(ev))


def test_event_file_scalars_are_relayed_as_json_lines(tmp_path):
    proc, out = start("TensorFlowEvent", tmp_path / "tb")
    try:
        (tmp_path / "tb" / "train").mkdir(parents=True)
        f = tmp_path / "tb" / "train" / "events.out.tfevents.1700000000.host"
        with open(f, "wb") as fh:
            fh.write(_event(0, "accuracy", 0.5))
            fh.flush()
            first = out.wait_for(1)
            record = _event(1, "accuracy", 0.75)
            fh.write(record[:10])  # a torn record: not relayed until whole
            fh.flush()
            time.sleep(0.6)
            assert len(out.lines) == 1
            fh.write(record[10:])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [json.loads(x) for x in out.join()]
    assert all(x.startswith("@") for x in out.raw)
    assert json.loads(first[0]) == lines[0]
    assert [(x["tag"], x["step"], x["value"]) for x in lines] == [("accuracy", 0, 0.5), ("accuracy", 1, 0.75)]
    assert {x["dir"] for x in lines} == {"train"}


def test_bad_arguments_exit_2_before_relaying_anything(tmp_path):
    r = subprocess.run([*autotune_cmd(), "collect-metrics", "--kind", "Prometheus", "--path", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "invalid choice" in r.stderr and r.stdout == ""


def test_relay_drains_a_capped_read_at_once_and_stops_on_a_cursor_that_does_not_move(tmp_path):
    path = tmp_path / "m.log"
    path.write_text("".join(f"a={i}\n" for i in range(50)))
    stop = threading.Event()
    calls: list[bool] = []
    printed: list[str] = []

    class Out:
        def write(self, s: str) -> None:
            printed.append(s)

        def flush(self) -> None:
            if len(printed) >= 50:
                stop.set()

    def small_reads(source, cursor, final) -> LogChunk | None:
        calls.append(final)
        return read_new(source, cursor, final, max_bytes=40)  # ~8 lines a read

    relay(small_reads, FileSource("File", path), Out(), stop, interval=60)  # type: ignore[arg-type]
    # All 50 lines without waiting an interval between capped reads, then one final read.
    assert "".join(printed) == path.read_text()
    assert calls[-1] is True and calls.count(True) == 1

    stuck = LogChunk(("x=1",), "same")
    stop.set()
    printed.clear()
    relay(lambda s, c, f: stuck, None, Out(), stop)  # type: ignore[arg-type]
    assert printed == ["x=1\n"]  # printed once, not forever


@pytest.mark.parametrize("interval", ["0", "-1"])
def test_interval_must_be_positive(tmp_path, interval):
    r = subprocess.run([*autotune_cmd(), "collect-metrics", "--kind", "File", "--path", str(tmp_path / "m"),
                        "--interval", interval], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--interval" in r.stderr


@pytest.mark.parametrize("kind", ["File", "TensorFlowEvent"])
@pytest.mark.parametrize("path", ["", "   "])
def test_a_blank_path_is_refused_at_once(kind, path):
    # Path("") is the working directory: the sidecar waited there for ever for a metrics
    # file that could never appear (or read a directory of no event files), silently.
    r = subprocess.run([*autotune_cmd(), "collect-metrics", "--kind", kind, "--path", path, "--interval", "0.2"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r
    assert "--path" in r.stderr and "blank" in r.stderr and r.stdout == ""


def wait_until_it_catches_sigterm(proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Until the process installed its SIGTERM handler (Linux: /proc/PID/status SigCgt): a
    SIGTERM sent before (its imports take over a second on a loaded machine) kills it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.05)
    raise AssertionError("the sidecar never installed its SIGTERM handler")


def test_nothing_relayed_says_why_in_the_termination_message(tmp_path):
    from autotune_operator.collect_metrics_command import why_nothing

    term = tmp_path / "termination-log"
    term.write_text("")
    missing = tmp_path / "katib" / "metrics.log"
    proc = subprocess.Popen([*autotune_cmd(), "collect-metrics", "--kind", "File", "--path", str(missing),
                             "--interval", "0.2", "--termination-log", str(term)], stdout=subprocess.PIPE, text=True)
    wait_until_it_catches_sigterm(proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out == ""
    assert term.read_text() == (f"autotune collect-metrics relayed nothing: {missing} was never created in this pod: "
                                "the trial writes its metrics there (spec.metricsCollector.path; "
                                "$AUTOTUNE_METRICS_PATH holds it)")

    events = tmp_path / "tb"
    (events / "train").mkdir(parents=True)
    (events / "train" / "notes.txt").write_text("x")
    assert "holds no events.out.tfevents" in why_nothing(FileSource("TensorFlowEvent", events))
    assert "is not a directory" in why_nothing(FileSource("TensorFlowEvent", events / "train" / "notes.txt"))
    empty = tmp_path / "empty.log"
    empty.write_text("")
    assert why_nothing(FileSource("File", empty)).endswith("is empty")
