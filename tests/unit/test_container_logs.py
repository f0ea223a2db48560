"""The fake node's container logs (kube_harness/container_logs.py): a real process's output
through the pump, and the kubelet's timestamps/sinceTime rendering of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kube_harness.container_logs import LogPump, MAX_LINE, complete_records, note, parse_ns, record, render, rfc3339_nano

S = 1_800_000_000 * 10**9  # 2027-01-15T08:00:00Z


def test_rfc3339_nano_is_gos_format_and_parses_back() -> None:
    assert rfc3339_nano(S) == b"2027-01-15T08:00:00Z"
    assert rfc3339_nano(S + 120_000_000) == b"2027-01-15T08:00:00.12Z"
    assert rfc3339_nano(S + 1) == b"2027-01-15T08:00:00.000000001Z"
    for ns in (S, S + 120_000_000, S + 1, S + 999_999_999):
        assert parse_ns(rfc3339_nano(ns)) == ns
    assert parse_ns("2027-01-15T09:00:00+01:00") == S and parse_ns("yesterday") is None


def test_render_plain_timestamped_since_and_partial_records() -> None:
    recs = [record(b"epoch 0", at_ns=S + 1), record(b"accuracy=0.5", at_ns=S + 500_000_000),
            record(b"accur", partial=True, at_ns=S + 2 * 10**9), record(b"acy=0.7", at_ns=S + 2 * 10**9 + 5)]
    records, n = complete_records(b"".join(recs) + b"2027-01-15T08:00:09Z F half-writ")
    assert n == len(b"".join(recs)) and len(records) == 4  # the record being written waits
    assert b"".join(render(records)) == b"epoch 0\naccuracy=0.5\naccuracy=0.7\n"
    stamped = render(records, timestamps=True)
    assert stamped[0] == b"2027-01-15T08:00:00.000000001Z epoch 0\n"
    assert stamped[2] == b"2027-01-15T08:00:02Z accur"  # no newline: the line goes on in the next
    # sinceTime keeps records at or after it (the API server sends whole seconds).
    assert render(records, since_ns=S + 500_000_000) == [b"accuracy=0.5\n", b"accur", b"acy=0.7\n"]
    assert render(records, since_ns=S + 2 * 10**9) == [b"accur", b"acy=0.7\n"]


def test_pump_copies_a_processes_output_to_both_files(tmp_path: Path) -> None:
    code = ("import sys, time\n"
            "print('accuracy=0.9', flush=True); time.sleep(0.05)\n"
            f"sys.stdout.write('x' * {MAX_LINE + 10} + '\\n'); sys.stderr.write('oops'); sys.stdout.flush()\n"
            "sys.stdout.write('last without newline')\n")
    plain, cri = tmp_path / "main.log", tmp_path / "main.cri"
    note(plain, cri, "[fake-node] starting")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    pump = LogPump(p.stdout, plain, cri)
    pump.start()
    p.wait()
    pump.join(10)
    assert not pump.is_alive()
    text = plain.read_bytes()
    assert text.startswith(b"[fake-node] starting\naccuracy=0.9\n") and text.endswith(b"last without newline")
    records, _ = complete_records(cri.read_bytes())
    tags = [r.split(b" ")[1] for r in records]
    assert tags[:3] == [b"F", b"F", b"P"]  # the note, the print, the long line's first 16 KiB
    assert tags[-1] == b"P"  # the last line had no newline
    # Rendered plain, the records give back exactly the bytes the process wrote.
    assert b"".join(render(records)) == text
    times = [parse_ns(r.split(b" ")[0]) for r in records]
    assert times == sorted(times) and None not in times
