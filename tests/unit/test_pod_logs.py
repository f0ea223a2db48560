"""Resuming a timestamped pod log (workloads/pod_logs.py): what kubectl --since-time does,
with the repeats the API's whole-second sinceTime causes, and timestamps out of the log's
order (stdout and stderr are stamped by two threads)."""

from __future__ import annotations

from autotune_operator.workloads.pod_logs import PodLogCursor, parse_timestamp, resume, since_time

S = 1_800_000_000  # a whole second, as ns below
T = "2027-01-15T08:00:00"  # == S


def stamp(frac: str) -> str:
    return f"{T}{frac}Z"


def test_parse_timestamp_nanoseconds_trimmed_fractions_offsets_and_junk() -> None:
    assert parse_timestamp(f"{T}Z") == S * 10**9
    assert parse_timestamp(stamp(".5")) == S * 10**9 + 500_000_000
    assert parse_timestamp(stamp(".000000001")) == S * 10**9 + 1
    assert parse_timestamp("2027-01-15T09:00:00.25+01:00") == S * 10**9 + 250_000_000
    assert parse_timestamp("accuracy=0.9") is None and parse_timestamp("") is None


def test_first_read_strips_timestamps_and_keeps_an_unfinished_line_for_later() -> None:
    data = f"{stamp('.1')} epoch 0\n{stamp('.2')} accuracy=0.5 loss=1\n{stamp('.3')} accur".encode()
    lines, cur = resume(data, PodLogCursor("u"))
    assert lines == ["epoch 0", "accuracy=0.5 loss=1"]
    assert cur == PodLogCursor("u", S * 10**9 + 200_000_000, 2)  # two lines from that second on
    assert since_time(cur) == f"{T}Z"  # whole seconds: the API's precision
    assert since_time(PodLogCursor("u")) is None


def test_a_resumed_read_drops_the_lines_it_returned_before() -> None:
    # Three lines read in one chunk share a timestamp; two were returned before.
    first = f"{stamp('.1')} a\n{stamp('.7')} b\n{stamp('.7')} c\n".encode()
    lines, cur = resume(first, PodLogCursor("u"))
    assert lines == ["a", "b", "c"] and cur.seen == 3
    again = f"{stamp('.1')} a\n{stamp('.7')} b\n{stamp('.7')} c\n{stamp('.7')} d\n{stamp('.9')} e\n".encode()
    lines, cur2 = resume(again, cur)
    assert lines == ["d", "e"]
    assert cur2 == PodLogCursor("u", S * 10**9 + 900_000_000, 5)
    # Nothing new: the same answer again adds nothing and keeps the cursor.
    assert resume(again, cur2) == ([], cur2)


def test_new_lines_with_the_cursors_own_timestamp_count_on() -> None:
    lines, cur = resume(f"{stamp('.5')} a\n".encode(), PodLogCursor("u"))
    lines, cur = resume(f"{stamp('.5')} a\n{stamp('.5')} b\n".encode(), cur)
    assert lines == ["b"] and cur.seen == 2
    lines, cur = resume(f"{stamp('.5')} a\n{stamp('.5')} b\n{stamp('.5')} c\n".encode(), cur)
    assert lines == ["c"] and cur.seen == 3


def test_final_read_counts_the_last_line_without_newline_and_empty_lines_stay() -> None:
    data = f"{stamp('.1')} \n{stamp('.2')} accuracy=0.97".encode()
    assert resume(data, PodLogCursor("u"))[0] == [""]
    lines, cur = resume(data, PodLogCursor("u"), final=True)
    assert lines == ["", "accuracy=0.97"] and cur.seen == 2


def test_a_line_without_a_timestamp_is_kept_in_place() -> None:
    lines, _ = resume(f"{stamp('.1')} a\nnot stamped\n".encode(), PodLogCursor("u"))
    assert lines == ["a", "not stamped"]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    lines, _ = resume(stamp(".1").encode() + b" acc\xff=1\n", PodLogCursor("u"))
    assert lines == ["acc\ufffd=1"]


def test_a_line_stamped_before_the_last_one_returned_is_not_lost() -> None:
    """stderr's line stamped .3 reached the log after stdout's stamped .5 (two threads stamp
    them): comparing with the last timestamp dropped it as old."""
    lines, cur = resume(f"{stamp('.5')} a\n".encode(), PodLogCursor("u"))
    lines, cur = resume(f"{stamp('.5')} a\n{stamp('.3')} accuracy=0.9\n{stamp('.6')} c\n".encode(), cur)
    assert lines == ["accuracy=0.9", "c"]
    assert cur == PodLogCursor("u", S * 10**9 + 600_000_000, 3)


def test_a_line_stamped_after_a_later_one_is_not_returned_twice() -> None:
    """The last line returned is stamped before the one above it: every line newer than it
    was returned again (its metric counted twice, taking the next step)."""
    lines, cur = resume(f"{stamp('.5')} accuracy=0.9\n{stamp('.3')} b\n".encode(), PodLogCursor("u"))
    assert lines == ["accuracy=0.9", "b"]
    lines, cur = resume(f"{stamp('.5')} accuracy=0.9\n{stamp('.3')} b\n{stamp('.6')} c\n".encode(), cur)
    assert lines == ["c"]


def test_reads_across_seconds_count_only_the_lines_from_the_new_second() -> None:
    lines, cur = resume(f"{stamp('.5')} a\n{T[:-1]}1.2Z b\n".encode(), PodLogCursor("u"))
    assert lines == ["a", "b"] and cur == PodLogCursor("u", (S + 1) * 10**9 + 200_000_000, 1)
    assert since_time(cur) == f"{T[:-1]}1Z"
    # The next answer starts at that second: b again, then what is new.
    lines, _ = resume(f"{T[:-1]}1.2Z b\n{T[:-1]}1.4Z c\n".encode(), cur)
    assert lines == ["c"]


def test_a_rotated_log_loses_no_new_line_to_the_count() -> None:
    """The kubelet rotated the log: the lines returned before are gone from the answer, and a
    line stamped after all of them is new whatever its position."""
    lines, cur = resume(f"{stamp('.1')} a\n{stamp('.2')} b\n".encode(), PodLogCursor("u"))
    lines, cur = resume(f"{stamp('.7')} accuracy=0.9\n{stamp('.8')} d\n".encode(), cur)
    assert lines == ["accuracy=0.9", "d"] and cur.seen == 2


def test_crlf_lines_read_as_locally() -> None:
    """A container with a TTY writes CRLF: the CR goes, as LocalExecutor.read_log drops it,
    so a format anchored with $ reads the same on a cluster."""
    lines, _ = resume(f"{stamp('.1')} accuracy=0.9\r\n".encode(), PodLogCursor("u"))
    assert lines == ["accuracy=0.9"]
