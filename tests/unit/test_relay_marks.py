"""A restarted ``autotune-metrics`` sidecar must not make the operator count a line twice or
lose one (relay_marks.py): the marks the sidecar prints, the operator's ``take``, and the
sidecar's own state across a restart (its cursor in its emptyDir), with real files and the
real relay loop (a "restart" is a second relay started from what the first one saved)."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

from autotune_operator.collect_metrics_command import load_cursor, relay, saver
from autotune_operator.metric_files import FileSource, partial_line, read_new
from autotune_operator.relay_marks import FILE_KEY, Taken, key_of, mark, take
from tests.unit.tfevent_writer import event, file_version, record, simple_value


def sidecar_run(source: FileSource, state: Path, final: bool = False) -> list[str]:
    """One sidecar instance: everything it prints until caught up (``final``: SIGTERMed, so
    its final read too), as its log holds it. A run that is not final is one that was killed."""
    out = io.StringIO()
    stop = threading.Event()

    def read(src: FileSource, cursor: object, fin: bool):  # type: ignore[no-untyped-def]
        if fin and not final:
            return None  # killed: no final read
        chunk = read_new(src, cursor, fin, marked=True)
        if not fin and (chunk is None or not chunk.lines):
            stop.set()  # caught up: this instance is killed now (or stopped, when final)
        return chunk

    relay(read, source, out, stop, interval=0.01, cursor=load_cursor(str(state), source), save=saver(str(state)))
    return out.getvalue().splitlines()


def test_take_drops_what_was_taken_and_keeps_new_generations_and_unmarked_lines() -> None:
    lines = [mark(FILE_KEY, 0, i, f"a={i}") for i in range(3)]
    got, taken = take(lines, Taken())
    assert got == ["a=0", "a=1", "a=2"]
    again, taken = take([*lines, mark(FILE_KEY, 0, 3, "a=3")], taken)  # a restarted sidecar's replay
    assert again == ["a=3"]
    rewritten, taken = take([mark(FILE_KEY, 1, 0, "b=0")], taken)  # the file rewritten: a new generation
    assert rewritten == ["b=0"]
    assert take(["plain=1", "@-:0:0 not a mark after all"], taken)[0] == ["plain=1"]  # an old sidecar's line
    # Keys are separate (event files): one file's position does not hide another's.
    assert take([mark(key_of("b/events"), 0, 0, "{}")], taken)[0] == ["{}"]


def test_an_unfinished_line_is_held_until_finished_or_a_final_read() -> None:
    got, taken = take([mark(FILE_KEY, 0, 0, "a=1"), mark(FILE_KEY, 0, 1, "acc=0.9", partial=True)], Taken())
    assert got == ["a=1"] and taken.partial == (FILE_KEY, 0, 1, "acc=0.9")
    finished, after = take([mark(FILE_KEY, 0, 1, "acc=0.95")], taken)
    assert finished == ["acc=0.95"] and after.partial is None
    assert take([], after, final=True)[0] == []  # nothing held: nothing more
    # Never finished: the trial's container ended (an outlived trial's final read).
    last, after = take([mark(FILE_KEY, 0, 1, "acc=0.97", partial=True)], taken, final=True)
    assert last == ["acc=0.97"] and after.partial is None and after.at[FILE_KEY] == (0, 1)
    # The same line relayed complete later (the sidecar's own final read) is not taken again.
    assert take([mark(FILE_KEY, 0, 1, "acc=0.97")], after, final=True)[0] == []


def test_a_restarted_sidecar_relays_a_file_again_and_the_operator_takes_each_line_once(tmp_path: Path) -> None:
    path, state = tmp_path / "metrics.log", tmp_path / "state"
    state.mkdir()
    src = FileSource("File", path)
    path.write_text("".join(f"epoch={i} accuracy=0.{i}\n" for i in range(3)))
    first = sidecar_run(src, state)
    with open(path, "a") as f:
        f.write("epoch=3 accuracy=0.3\nepoch=4 accuracy=0.4\n")
    second = sidecar_run(src, state, final=True)  # the restarted container: a fresh process, same emptyDir
    # Its log holds the whole file again (so a restarted operator numbers the values as before)...
    assert [line.split(" ", 1)[1] for line in second] == [f"epoch={i} accuracy=0.{i}" for i in range(5)]
    # ...and the operator, which read the first instance's log, takes only what is new.
    a, taken = take(first, Taken())
    b, _ = take(second, taken)
    assert a + b == [f"epoch={i} accuracy=0.{i}" for i in range(5)]


def test_a_file_rewritten_while_no_sidecar_ran_is_a_new_generation(tmp_path: Path) -> None:
    """The trainer restarted in place (OnFailure) rewrote the file while the sidecar was down
    too: the new content is taken whole, none of it mistaken for the replay of the old."""
    path, state = tmp_path / "metrics.log", tmp_path / "state"
    state.mkdir()
    src = FileSource("File", path)
    path.write_text("a=1\na=2\na=3\n")
    first = sidecar_run(src, state)
    path.write_text("b=1\nb=2\nb=3\nb=4\n")
    second = sidecar_run(src, state, final=True)
    a, taken = take(first, Taken())
    b, _ = take(second, taken)
    assert a == ["a=1", "a=2", "a=3"] and b == ["b=1", "b=2", "b=3", "b=4"]
    # Without the state (no --state-dir), the same restart would have hidden b=1..b=3.
    assert json.loads((state / "cursor.json").read_text())["gen"] == 1


def test_event_values_all_logged_at_one_step_are_not_repeated_by_a_restart(tmp_path: Path) -> None:
    """PyTorch's add_scalar without a step writes every value at step 0: only the marks tell
    a restarted sidecar's replay from new values."""
    root, state = tmp_path / "tb", tmp_path / "state"
    (root / "train").mkdir(parents=True)
    state.mkdir()
    f = root / "train" / "events.out.tfevents.1.host"
    src = FileSource("TensorFlowEvent", root)
    f.write_bytes(record(file_version()) + b"".join(record(event(0, simple_value("accuracy", v))) for v in (0.5, 0.6)))
    first = sidecar_run(src, state)
    with open(f, "ab") as fh:
        fh.write(record(event(0, simple_value("accuracy", 0.7))))
    second = sidecar_run(src, state, final=True)
    a, taken = take(first, Taken())
    b, _ = take(second, taken)
    assert [round(json.loads(x)["value"], 4) for x in a + b] == [0.5, 0.6, 0.7]  # float32 values
    assert len(second) == 3  # the replay, dropped by take


def test_the_unfinished_last_line_is_shown_marked_once_everything_before_it_was_read(tmp_path: Path) -> None:
    path = tmp_path / "metrics.log"
    src = FileSource("File", path)
    path.write_text("a=1\nacc=0.9")
    chunk = read_new(src, None, False, marked=True)
    assert chunk is not None and chunk.lines == (mark(FILE_KEY, 0, 0, "a=1"),)
    assert partial_line(src, chunk.cursor) == mark(FILE_KEY, 0, 1, "acc=0.9", partial=True)
    assert partial_line(src, None) is None  # nothing read yet: complete lines come first
    path.write_text("a=1\nacc=0.9\n")
    assert partial_line(src, chunk.cursor) is None  # finished: the next read relays it


def test_an_operator_restarted_after_the_sidecar_restart_numbers_the_values_as_the_first_did(tmp_path: Path) -> None:
    """A restarted operator reads the sidecar's (current instance's) log from its start: it
    holds the whole file again, so the parser gives every value the step it had before and the
    tuner server skips what it has."""
    from autotune_operator.log_metrics import LogParser

    path, state = tmp_path / "metrics.log", tmp_path / "state"
    state.mkdir()
    src = FileSource("File", path)
    path.write_text("accuracy=0.1\naccuracy=0.2\n")
    first = sidecar_run(src, state)
    with open(path, "a") as f:
        f.write("accuracy=0.3\n")
    second = sidecar_run(src, state, final=True)
    a, taken = take(first, Taken())
    b, _ = take(second, taken)
    before = LogParser.of(None, ["accuracy"]).feed(a + b)  # the operator that lived through it
    after = LogParser.of(None, ["accuracy"]).feed(take(second, Taken())[0])  # one started afresh
    assert [(c.value, c.step) for c in after] == [(c.value, c.step) for c in before] == [(0.1, 0), (0.2, 1), (0.3, 2)]


def test_an_event_file_that_shrank_while_no_sidecar_ran_is_a_new_generation(tmp_path: Path) -> None:
    root, state = tmp_path / "tb", tmp_path / "state"
    root.mkdir()
    state.mkdir()
    f = root / "events.out.tfevents.1.host"
    src = FileSource("TensorFlowEvent", root)
    f.write_bytes(record(file_version()) + b"".join(record(event(s, simple_value("loss", 1.0 / (s + 1))))
                                                    for s in range(3)))
    first = sidecar_run(src, state)
    f.write_bytes(record(file_version()) + record(event(0, simple_value("loss", 9.0))))  # rewritten, shorter
    second = sidecar_run(src, state, final=True)
    a, taken = take(first, Taken())
    b, _ = take(second, taken)
    assert len(a) == 3 and [json.loads(x)["value"] for x in b] == [9.0]
    assert second[0].startswith(f"@{key_of('events.out.tfevents.1.host')}:1:0 ")


def test_the_sidecars_final_read_keeps_an_unterminated_last_line_marked_so_the_operator_knows(tmp_path: Path) -> None:
    """The trial was killed mid-line: the sidecar's final read relays 'acc=0.9' marked
    unfinished, and the operator's final take says the line it took was one (the controller
    drops it for a killed trial: cut_lines.py). Unmarked, it read as a whole line."""
    path = tmp_path / "m.log"
    path.write_text("acc=0.5\nacc=0.9")
    printed = sidecar_run(FileSource("File", path), tmp_path / "state", final=True)
    assert printed == [mark(FILE_KEY, 0, 0, "acc=0.5"), mark(FILE_KEY, 0, 1, "acc=0.9", partial=True)]
    got, taken = take(printed, Taken(), final=True)
    assert got == ["acc=0.5", "acc=0.9"] and taken.unterminated
    whole, taken = take([mark(FILE_KEY, 0, 2, "acc=0.97")], taken, final=True)
    assert whole == ["acc=0.97"] and not taken.unterminated
