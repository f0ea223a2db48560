"""A fake node's container logs, kept and served the way the kubelet and containerd do.

A container's stdout+stderr goes through a pipe to a :class:`LogPump` thread, which writes
two files in the pod's sandbox:

* ``<container>.log``: the bytes as written (what ``ControlPlane.pod_log`` reads);
* ``<container>.cri``: one record per line, ``<RFC 3339 nano UTC> <F|P> <text>\\n``, like
  containerd's CRI log: the time is when the line was read whole (F), a line longer than
  16 KiB is cut into partial records (P), and a last line without newline at the end is a
  partial record too.

:func:`render` answers the kubelet's ``containerLogs`` query from the records:
``timestamps=true`` puts each record's time and a space before its text, ``sinceTime``
keeps the records at or after that time, ``tailLines`` and ``limitBytes`` as the kubelet.
A partial record gets no newline (so its continuation follows it, as with the kubelet).
"""

from __future__ import annotations

import calendar
import os
import re
import threading
import time
from pathlib import Path
from typing import IO, Iterable

MAX_LINE = 16 * 1024  # containerd's bufio size: a longer line is split into partial records
_RFC3339 = re.compile(rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def rfc3339_nano(ns: int) -> bytes:
    """Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped, no '.' when none."""
    secs, frac = divmod(ns, 1_000_000_000)
    head = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    digits = f"{frac:09d}".rstrip("0")
    return f"{head}{'.' + digits if digits else ''}Z".encode()


def parse_ns(text: bytes | str) -> int | None:
    """RFC 3339 (with or without fraction, any offset) -> ns since the epoch."""
    m = _RFC3339.fullmatch(text.encode() if isinstance(text, str) else text)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    zone = m.group(8)
    if zone != b"Z":
        secs -= (1 if zone[:1] == b"+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return secs * 1_000_000_000 + int((m.group(7) or b"").ljust(9, b"0") or 0)


def record(text: bytes, partial: bool = False, at_ns: int | None = None) -> bytes:
    """One CRI-style record (``text`` holds no newline)."""
    return rfc3339_nano(time.time_ns() if at_ns is None else at_ns) + (b" P " if partial else b" F ") + text + b"\n"


def note(plain: Path, cri: Path, message: str) -> None:
    """A line the fake node itself adds to a container's log (both files)."""
    line = message.encode()
    with open(plain, "ab") as f:
        f.write(line + b"\n")
    with open(cri, "ab") as f:
        f.write(record(line))


class LogPump(threading.Thread):
    """Copies a container's output pipe to its plain log and its CRI records until EOF
    (every writer of the pipe gone: the process and whatever it left running)."""

    def __init__(self, src: IO[bytes], plain: Path, cri: Path, name: str = "log-pump") -> None:
        super().__init__(daemon=True, name=name)
        self.src, self.plain, self.cri = src, plain, cri

    def run(self) -> None:
        fd = self.src.fileno()
        pending = b""
        with open(self.plain, "ab") as out, open(self.cri, "ab") as rec:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                out.write(chunk)
                out.flush()
                *lines, pending = (pending + chunk).split(b"\n")
                batch: list[bytes] = []
                for line in lines:
                    while len(line) > MAX_LINE:
                        batch.append(record(line[:MAX_LINE], partial=True))
                        line = line[MAX_LINE:]
                    batch.append(record(line))
                while len(pending) >= MAX_LINE:
                    batch.append(record(pending[:MAX_LINE], partial=True))
                    pending = pending[MAX_LINE:]
                if batch:  # one write per read: a reader never sees a record cut in two
                    rec.write(b"".join(batch))
                    rec.flush()
            if pending:
                rec.write(record(pending, partial=True))
        self.src.close()


def complete_records(data: bytes) -> tuple[list[bytes], int]:
    """The whole records in ``data`` and how many bytes they take (a record being written
    at the end is left for the next read)."""
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), end


def render(records: Iterable[bytes], *, timestamps: bool = False, since_ns: int | None = None) -> list[bytes]:
    """Each record as the kubelet returns it, filtered by ``sinceTime``."""
    out: list[bytes] = []
    for r in records:
        stamp, _, rest = r.partition(b" ")
        tag, _, text = rest.partition(b" ")
        if since_ns is not None:
            t = parse_ns(stamp)
            if t is not None and t < since_ns:
                continue
        line = text if tag == b"P" else text + b"\n"
        out.append(stamp + b" " + line if timestamps else line)
    return out
