"""Position marks on the lines the metrics sidecar relays, so that no line is counted twice
or lost when the sidecar restarts: pure functions, no I/O.

``autotune collect-metrics`` (the ``autotune-metrics`` sidecar of File and TensorFlowEvent
collectors) prints every line it relays as ``@KEY:GEN:INDEX TEXT``:

* ``KEY``: which source the line comes from: ``-`` for a File collector's file, the CRC-32
  (8 hex digits) of an event file's path relative to the watched directory;
* ``GEN``: the source's generation: 0, and one more each time the sidecar found it rewritten
  (truncated or replaced). The sidecar keeps it in its own emptyDir, which outlives a
  restart of its container, so a restarted sidecar numbers as its predecessor did;
* ``INDEX``: the line's place in that generation (0 = its first line: a File's text line, an
  event file's scalar).

A restarted sidecar relays the source from its start again (its log then holds the whole
current generation, which a restarted operator reads from its start and numbers the values
of as the first operator did); the operator's reader takes a line only when its position is
past the last one taken from that key (``take``), so the repeated lines are dropped.

``@KEY:GEN:INDEX+ TEXT`` (a ``+``) is a File's last line that has no newline yet. It is
held, not taken: a later complete line at the same position replaces it; it is taken only
by a final read (the trial's container has ended: the line will never be finished), which
is what a trial whose pod is kept alive by a non-native sidecar (a mesh proxy: the kubelet
never stops ``autotune-metrics`` there, so its own final read never happens) needs.
The sidecar's own final read marks a last line without a newline the same way, so a line
taken so is known as unterminated (``Taken.unterminated``): the operator drops it when the
trial was killed (a line cut mid-write), as it does for a local trial's file.

A line without a mark (a collector image older than the operator) is taken as it is.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Iterable, Mapping

FILE_KEY = "-"
_MARK = re.compile(r"@([0-9a-f]{8}|-):(\d+):(\d+)(\+?) ")


def key_of(rel: str) -> str:
    """The key of an event file (its path relative to the watched directory)."""
    return f"{zlib.crc32(rel.encode('utf-8')):08x}"


def mark(key: str, gen: int, index: int, text: str, partial: bool = False) -> str:
    return f"@{key}:{gen}:{index}{'+' if partial else ''} {text}"


@dataclass(frozen=True)
class Taken:
    """What a reader took of one sidecar's log: the last position per key, and the
    unterminated last line held back (key, gen, index, text)."""

    at: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    partial: tuple[str, int, int, str] | None = None
    # The last line the latest ``take`` returned is a held unterminated line (final only).
    unterminated: bool = False


def take(lines: Iterable[str], taken: Taken, final: bool = False) -> tuple[list[str], Taken]:
    """The lines of ``lines`` not taken before, without their marks, and what is taken after
    them. ``final``: the trial's container has ended; a held unterminated line is taken."""
    at = dict(taken.at)
    partial = taken.partial
    out: list[str] = []
    for line in lines:
        m = _MARK.match(line)
        if m is None:
            out.append(line)
            continue
        key, pos, text = m.group(1), (int(m.group(2)), int(m.group(3))), line[m.end():]
        if pos <= at.get(key, (-1, -1)):
            continue  # relayed again by a restarted sidecar
        if m.group(4):
            partial = (key, pos[0], pos[1], text)  # the latest form of the unfinished line
            continue
        if partial is not None and partial[0] == key and (partial[1], partial[2]) <= pos:
            partial = None  # finished (or the file rewritten): the complete line counts
        at[key] = pos
        out.append(text)
    unterminated = False
    if final and partial is not None:
        key, gen, index, text = partial
        if (gen, index) > at.get(key, (-1, -1)):
            at[key] = (gen, index)
            out.append(text)
            unterminated = True
        partial = None
    return out, Taken(at, partial, unterminated)
