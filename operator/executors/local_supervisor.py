"""Runs one local trial and writes down how it ended, even when `autotune run` is gone.

    python -I -S local_supervisor.py RECORD CONTROLLER_PID KEY [NOTES_FD] -- COMMAND...

A process only learns its child's exit status if it is the parent, so a trial whose
`autotune run` was killed (SIGKILL, OOM, a closed terminal) used to end unseen: the next
run could not tell "finished" from "crashed" and ran it again from scratch. The local
executor therefore starts each trial through this small parent. It writes RECORD (JSON,
replaced atomically) when the trial starts, ``{"pid", "key"}``, and when it ends,
``{"pid", "key", "exit"}`` (``exit`` as Popen's returncode: negative for a signal) or
``{"pid", "key", "exit": null, "error"}`` if the command could not start. KEY ties the
record to one experiment's trial, so files of an older experiment in the same folder are
never taken for this one's. It then ends the way the trial did (the same exit code or
signal), so a controller that is still there sees what it always saw.

A record it cannot write (a full disk, a broken folder) must not change how the trial
ends: a trial that exited 0 still ends with 0, keeping its metrics. What failed goes, as
one JSON line, to NOTES_FD, a pipe from the controller that needs no disk:
``{"error": why}`` when the trial was not started (its start could not be recorded) and
``{"unrecorded": why}`` when its exit code could not be (the controller gets the code
from this process's own exit). It is also printed to stderr (trial.log), if that works.

Signals that stop trials (SIGTERM, SIGINT, SIGHUP) are sent to the whole process group:
the trial gets them itself, and this process waits for it to exit to record that. The first
of them it got before the trial exited is recorded too, ``"signal": "SIGINT"``: a trial that
then exits non-zero was stopped from outside (a Ctrl-C or a shutdown that reached its
processes), which its exit code alone (1, after a KeyboardInterrupt) would pass off as a
failure of its own code.
Standard library only; it is run with -I -S, so it starts in a few milliseconds and
nothing on the trial's PYTHONPATH can break it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any


def write_record(path: str, record: dict[str, Any]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        try:  # a partial file would fill the disk further, and may be taken for a record
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _say(notes: int | None, kind: str, why: str) -> None:
    """Tell the controller (NOTES_FD; gone if it died) and the trial's log what failed."""
    if notes is not None:
        try:
            os.write(notes, (json.dumps({kind: why}) + "\n").encode())
        except OSError:  # its controller died (EPIPE): the log is all that is left
            pass
    try:
        print(f"autotune: {why}", file=sys.stderr, flush=True)
    except OSError:  # the log is on the same full disk
        pass


def main(argv: list[str]) -> int:
    notes: int | None = None
    if len(argv) >= 5 and argv[3] == "--":
        command = argv[4:]
    elif len(argv) >= 6 and argv[4] == "--" and argv[3].isdigit():
        notes, command = int(argv[3]), argv[5:]
    else:
        print("usage: local_supervisor.py RECORD CONTROLLER_PID KEY [NOTES_FD] -- COMMAND...", file=sys.stderr)
        return 2
    record, controller, key = argv[0], int(argv[1]), argv[2]
    got: list[int] = []  # stop signals received, first first

    def note(signum: int, frame: object) -> None:
        # A handler, not SIG_IGN: an ignored signal would stay ignored in the trial after exec.
        got.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, note)
    if os.getppid() != controller:
        # The controller died before it could note this process: the next `autotune run`
        # finds no record and starts the trial itself. Starting it here too would run it twice.
        return 0
    me = {"pid": os.getpid(), "key": key}
    try:
        write_record(record, me)
    except OSError as e:
        # Not started: a trial without a record would be started again by a restarted run.
        _say(notes, "error", f"its process record {record} could not be written: {e}")
        return 127
    try:
        child = subprocess.Popen(command)
    except OSError as e:
        print(f"autotune: cannot start {command[0]!r}: {e}", file=sys.stderr, flush=True)
        try:
            write_record(record, {**me, "exit": None, "error": str(e)})
        except OSError:
            pass
        _say(notes, "error", f"cannot start {command[0]!r}: {e}")
        return 127
    code = child.wait()
    try:
        write_record(record, {**me, "exit": code, **({"signal": signal.Signals(got[0]).name} if got else {})})
    except OSError as e:
        _say(notes, "unrecorded", f"its exit code ({code}) could not be recorded in {record}: {e}")
    if code < 0:  # end by the same signal
        try:
            signal.signal(-code, signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
            pass
        os.kill(os.getpid(), -code)
        return 128 - code  # a signal that does not terminate
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
