"""Metrics read from a trial's output (Katib's StdOut collector): the pure parser
(operator/log_metrics.py), the local executor's log reader, and spec.metricsCollector's
validation."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autotune_operator.executors.local import READ_LOG_BYTES, LocalExecutor, ProcessTemplate
from autotune_operator.log_metrics import (DEFAULT_FORMAT, MAX_OTHERS, Collected, FormatError, LogParser,
                                          compile_formats, default_matches, why_no_objective)
from autotune_operator.spec import SpecError, validate_manifest


def parse(lines: list[str], names: list[str], formats: list[str] | None = None) -> list[tuple[str, float, int]]:
    return [(c.key, c.value, c.step) for c in LogParser.of(formats, names).feed(lines)]


# ----- the parser -----

def test_default_katib_format_reads_named_metrics_with_their_steps() -> None:
    lines = [
        "loading digits",
        "epoch=0 accuracy=0.8512 loss=0.52",
        "epoch=1 accuracy=0.9012 loss=0.31",
        "epoch = 2 accuracy = 0.9512 loss=2e-1",  # spaces around '=', an exponent
    ]
    assert parse(lines, ["accuracy", "loss"]) == [
        ("accuracy", 0.8512, 0), ("loss", 0.52, 0),
        ("accuracy", 0.9012, 1), ("loss", 0.31, 1),
        ("accuracy", 0.9512, 2), ("loss", 0.2, 2),
    ]


def test_names_not_asked_for_are_ignored_as_katib_does() -> None:
    # 'epoch' is printed on every line but is neither the objective nor an additional metric.
    assert parse(["epoch=3 accuracy=0.9 lr=0.01"], ["accuracy"]) == [("accuracy", 0.9, 0)]
    assert parse(["epoch=3 val-loss=0.4"], ["val-loss"]) == [("val-loss", 0.4, 0)]  # '-' is part of a name


def test_unparsable_and_non_finite_values_are_skipped_and_take_no_step() -> None:
    lines = [
        "accuracy=nan",          # the default format reads no digits here: value ''
        "accuracy= loss=1",      # '' again
        "accuracy=inf",
        "accuracy=.5",
        "accuracy=-0.25e1",
        "accuracy=+7",
    ]
    assert parse(lines, ["accuracy"]) == [("accuracy", 0.5, 0), ("accuracy", -2.5, 1), ("accuracy", 7.0, 2)]
    # A custom format that does capture 'nan'/'inf': float() reads them, but they are not finite.
    fmt = [r"(\w+):\s*(\S+)"]
    assert parse(["acc: nan", "acc: inf", "acc: 1e999", "acc: oops", "acc: 0.75"], ["acc"], fmt) == [("acc", 0.75, 0)]


def test_why_no_objective_names_what_the_trial_did_print() -> None:
    """Katib's users get a bare MetricsUnavailable and guess at their regex; this says what
    was printed instead: the uncollected names, else the last line, else nothing."""
    p = LogParser.of(None, ["accuracy"])
    p.feed(["epoch=1 acc=0.9 lr=", "val_acc=0.8", *(f"m{i}=1" for i in range(2 * MAX_OTHERS))])
    why = why_no_objective(p, ["accuracy"])
    assert why.startswith("no value of 'accuracy' was read from its output")
    assert "it printed 'epoch', 'acc', 'val_acc', 'm0'" in why and "'lr'" not in why  # lr= has no value
    assert len(p.others) == MAX_OTHERS  # a chatty log does not grow the parser
    p = LogParser.of(None, ["accuracy"])
    p.feed(["Validation accuracy: 0.97", "   "])
    assert why_no_objective(p, ["accuracy"]).endswith("; its last line: 'Validation accuracy: 0.97'")
    assert why_no_objective(LogParser.of(None, ["a", "b"]), ["a", "b"]).endswith("'a', 'b' was read from its output "
                                                                               "(spec.metricsCollector reads lines such as "
                                                                               "'a=0.97'); it printed nothing")


def test_custom_format_and_several_formats_per_line() -> None:
    fmts = [r"([\w-]+)\s*:\s*([+-]?\d+(?:\.\d+)?)", r"\{(\w+) is (\d+(?:\.\d+)?)\}"]
    lines = ["Epoch 1 | accuracy: 0.81 | loss: 0.6 {top5 is 0.97}", "accuracy=0.99 is not this format"]
    assert parse(lines, ["accuracy", "loss", "top5"], fmts) == [
        ("accuracy", 0.81, 0), ("loss", 0.6, 0), ("top5", 0.97, 0),
    ]


def test_every_match_in_a_line_counts_and_steps_are_per_name() -> None:
    p = LogParser.of(None, ["a", "b"])
    assert p.feed(["a=1 a=2 b=3"]) == [Collected("a", 1.0, 0), Collected("a", 2.0, 1), Collected("b", 3.0, 0)]
    # Steps keep counting across feeds (the log read in parts, pass after pass).
    assert p.feed(["b=4", "a=5"]) == [Collected("b", 4.0, 1), Collected("a", 5.0, 2)]
    assert p.counts == {"a": 3, "b": 2}


def test_a_name_group_with_spaces_is_stripped_and_optional_groups_are_skipped() -> None:
    assert parse(["  acc  -> 0.5"], ["acc"], [r"(\s*\w+\s*)->\s*(\S+)"]) == [("acc", 0.5, 0)]
    # Group 2 optional and absent: no value, nothing collected.
    assert parse(["acc"], ["acc"], [r"(\w+)(?:=(\d+))?"]) == []


def test_formats_must_compile_and_have_two_groups() -> None:
    assert compile_formats(None)[0].pattern == DEFAULT_FORMAT
    with pytest.raises(FormatError, match="not a valid regular expression") as e:
        compile_formats([r"(\w+)=(\d+)", "(unclosed"])
    assert e.value.index == 1
    with pytest.raises(FormatError, match="1 group"):
        compile_formats([r"(\w+)=\d+"])
    with pytest.raises(FormatError, match="more than 1000"):
        compile_formats(["(a)(b)" + "x" * 1000])
    with pytest.raises(FormatError, match="at most 16") as e:
        compile_formats([r"(a)(b)"] * 17)
    assert e.value.index == -1


# ----- LocalExecutor.read_log: complete lines from a byte offset -----

def executor(tmp_path: Path) -> LocalExecutor:
    return LocalExecutor(ProcessTemplate(("true",), {}, str(tmp_path)), tmp_path)


def write_log(tmp_path: Path, trial: str, data: bytes) -> None:
    d = tmp_path / "trials" / trial
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "trial.log", "ab") as f:
        f.write(data)


def test_read_log_returns_complete_lines_and_a_cursor_to_continue_from(tmp_path: Path) -> None:
    ex = executor(tmp_path)
    assert ex.read_log("t-0", None) is None  # no log yet
    write_log(tmp_path, "t-0", b"epoch=0 accuracy=0.5\r\nepoch=1 acc")
    c1 = ex.read_log("t-0", None)
    assert c1 is not None and c1.lines == ("epoch=0 accuracy=0.5",) and c1.cursor == len(b"epoch=0 accuracy=0.5\r\n")
    # The half-written line is not returned until its newline arrives.
    c2 = ex.read_log("t-0", c1.cursor)
    assert c2 is not None and c2.lines == () and c2.cursor == c1.cursor
    write_log(tmp_path, "t-0", "uracy=0.75 naïve\nlast=1".encode())
    c3 = ex.read_log("t-0", c2.cursor)
    assert c3 is not None and c3.lines == ("epoch=1 accuracy=0.75 naïve",)
    # The trial ended: its last line counts without a newline.
    c4 = ex.read_log("t-0", c3.cursor, final=True)
    assert c4 is not None and c4.lines == ("last=1",)
    # ...flagged, for the controller to drop if the trial was killed (cut_lines.py).
    assert c4.unterminated and not c3.unterminated
    assert ex.read_log("t-0", c4.cursor, final=True) == type(c4)((), c4.cursor)


def test_read_log_reads_a_large_log_in_parts(tmp_path: Path) -> None:
    ex = executor(tmp_path)
    line = b"accuracy=0.5 " + b"x" * 1000 + b"\n"
    n = READ_LOG_BYTES // len(line) * 2 + 3
    write_log(tmp_path, "t-0", line * n)
    total, cursor, reads = 0, None, 0
    while True:
        chunk = ex.read_log("t-0", cursor, final=True)
        assert chunk is not None
        if not chunk.lines:
            break
        total, cursor, reads = total + len(chunk.lines), chunk.cursor, reads + 1
    assert total == n and reads == 3 and cursor == len(line) * n



def read_all(ex: LocalExecutor, trial: str) -> list[str]:
    lines: list[str] = []
    cursor = None
    while (chunk := ex.read_log(trial, cursor, final=True)) is not None and chunk.lines:
        lines.extend(chunk.lines)
        cursor = chunk.cursor
    return lines


@pytest.mark.parametrize("sep", ["\r", " ", ""], ids=["progress-bar", "blanks", "no-blank"])
def test_a_line_longer_than_a_read_is_never_cut_inside_a_value(tmp_path: Path, sep: str) -> None:
    """A progress bar (tqdm rewrites its line with '\r') printing megabytes before its newline:
    the line is returned in pieces of at most READ_LOG_BYTES, and a piece ended exactly where
    the read did, inside 'accuracy=0.9734', so 'accuracy=0.97' was read as a value. Now a
    piece ends after a '\r' or a blank, else before the trailing 'name=value' characters,
    and never inside a multi-byte character."""
    ex = executor(tmp_path)
    first = b"accuracy=0.5\n"
    metric = f"{sep}accuracy=0.9734".encode()
    # The second read starts after the first line: its end falls between '0.97' and '34'.
    size = READ_LOG_BYTES - len(f"{sep}accuracy=0.97".encode())
    # No blank: 3-byte characters ('€'), so a cut at the read's end may fall inside one.
    filler = sep.encode() * size if sep else "€".encode() * (size // 3) + b"x" * (size % 3)
    write_log(tmp_path, "t-0", first + filler + metric + f"{sep}done".encode() * 3 + b"\n")
    lines = read_all(ex, "t-0")
    values = [c.value for c in LogParser.of(None, ["accuracy"]).feed(lines)]
    assert values == [0.5, 0.9734]
    assert "\ufffd" not in "".join(lines)

BASE: dict[str, Any] = {
    "apiVersion": "tensorstack.dev/v1beta1", "kind": "AutoTuneExperiment", "metadata": {"name": "q"},
    "spec": {"maxTrialNum": 1, "searchSpace": '{"x": {"_type": "choice", "_value": [1]}}',
             "tuner": {"builtinTunerName": "Random"}, "primaryMetric": "accuracy",
             "trainingConfig": {"type": "pytorch", "tasks": [{"type": "master", "template": {
                 "spec": {"containers": [{"name": "c", "image": "i", "command": ["train"]}]}}}]}},
}


def problems(collector: Any, **spec: Any) -> list[str]:
    doc = copy.deepcopy(BASE)
    doc["spec"]["metricsCollector"] = collector
    for k, v in spec.items():
        if v is None:
            doc["spec"].pop(k, None)
        else:
            doc["spec"][k] = v
    try:
        validate_manifest(doc)
    except SpecError as e:
        return e.problems
    return []


def test_a_valid_collector_is_accepted() -> None:
    assert problems({"kind": "StdOut"}) == []
    assert problems({"kind": "StdOut", "metricsFormat": [r"(\w+):\s*(\S+)"], "additionalMetricNames": ["loss"]}) == []
    objectives = [{"name": "accuracy", "optimizeMode": "maximize"}, {"name": "size", "optimizeMode": "minimize"}]
    assert problems({"kind": "StdOut"}, primaryMetric=None, objectives=objectives) == []
    # A name the default format cannot read is fine with a format that can.
    assert problems({"kind": "StdOut", "metricsFormat": [r"([\w/]+)=(\S+)"]}, primaryMetric="val/accuracy") == []
    assert parse(["val/accuracy=0.5"], ["val/accuracy"], [r"([\w/]+)=(\S+)"]) == [("val/accuracy", 0.5, 0)]


@pytest.mark.parametrize("collector, spec, expected", [
    ({"kind": "StdOut"}, {"primaryMetric": None},
     "spec.metricsCollector: needs spec.primaryMetric (or spec.objectives)"),
    ({"kind": "Prometheus"}, {}, "spec.metricsCollector.kind: is not supported; the kinds are StdOut"),
    ({}, {}, "spec.metricsCollector.kind: is required"),
    ({"kind": "StdOut", "metricsFormat": [r"(\w+)=(\d+)", "acc=(["]}, {},
     "spec.metricsCollector.metricsFormat[1]: is not a valid regular expression"),
    ({"kind": "StdOut", "metricsFormat": [r"accuracy=(\d+)"]}, {}, "spec.metricsCollector.metricsFormat[0]: has 1 group"),
    ({"kind": "StdOut", "metricsFormat": []}, {}, "spec.metricsCollector.metricsFormat: is empty"),
    ({"kind": "StdOut", "metricsFormat": [r"(a)(b)"] * 17}, {}, "spec.metricsCollector.metricsFormat: 17 formats given"),
    ({"kind": "StdOut", "metricsFormat": ["(a)(b)" + "c" * 1000]}, {}, "spec.metricsCollector.metricsFormat[0]: is 1006 characters"),
    ({"kind": "StdOut", "additionalMetricNames": ["loss", "  "]}, {},
     "spec.metricsCollector.additionalMetricNames[1]: must name a metric"),
    ({"kind": "StdOut", "additionalMetricNames": ["x" * 251]}, {}, "spec.metricsCollector.additionalMetricNames[0]: is 251 characters"),
    ({"kind": "StdOut", "additionalMetricNames": [f"m{i}" for i in range(65)]}, {},
     "spec.metricsCollector.additionalMetricNames: lists 65 names, at most 64"),
    ({"kind": "StdOut", "formats": "x"}, {}, "spec.metricsCollector.formats: unknown field"),
    ({"kind": "StdOut"}, {"primaryMetric": "val/accuracy"},
     "spec.primaryMetric: 'val/accuracy' can never be read with the default metricsFormat"),
    ({"kind": "StdOut", "additionalMetricNames": ["top 1"]}, {},
     "spec.metricsCollector.additionalMetricNames[0]: 'top 1' can never be read with the default metricsFormat"),
    ({"kind": "StdOut"}, {"primaryMetric": None, "objectives": [{"name": "acc", "optimizeMode": "maximize"},
                                                               {"name": "size(MB)", "optimizeMode": "minimize"}]},
     "spec.objectives[1].name: 'size(MB)' can never be read"),
])
def test_a_bad_collector_is_refused_naming_the_field(collector: Any, spec: dict[str, Any], expected: str) -> None:
    got = problems(collector, **spec)
    assert len(got) == 1 and got[0].startswith(expected), got


def test_colour_codes_around_a_metric_do_not_hide_it() -> None:
    """A coloured logger's line: the default format's name group read '32maccuracy' (the
    escape's tail) and the value was lost, the trial 'printed no accuracy'."""
    p = LogParser.of(None, ["accuracy", "loss"])
    got = p.feed(["\x1b[32maccuracy=0.9\x1b[0m",
                  "\x1b[1;32mINFO\x1b[0m epoch=1 \x1b[36maccuracy\x1b[0m=\x1b[33m0.75\x1b[0m loss=0.2",
                  "\x1b]0;training\x07\x1b[2Kaccuracy=0.8"])
    assert got == [Collected("accuracy", 0.9, 0), Collected("accuracy", 0.75, 1), Collected("loss", 0.2, 0),
                   Collected("accuracy", 0.8, 2)]
    assert list(p.others) == ["epoch"] and p.last_line == "accuracy=0.8"


def test_the_default_format_reads_a_long_word_in_linear_time() -> None:
    """A line holding a long run of name characters with no '=' (a base64 blob, a hex dump):
    Python's backtracking re tried the default format at each of its positions, rescanning the
    rest each time (40 KB took 9 s; this 4 MB line, hours), and the controller was stuck there.
    Run in a child process with a generous limit (the fixed parser needs well under a second):
    the old code could not finish it within the limit on any machine."""
    script = ("from autotune_operator.log_metrics import LogParser\n"
              "p = LogParser.of(None, ['accuracy'])\n"
              "got = p.feed(['x' * 4_000_000 + ' accuracy=0.9', '7' * 4_000_000])\n"
              "print([(c.key, c.value) for c in got])\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "[('accuracy', 0.9)]", r.stderr[-2000:]


@pytest.mark.parametrize("line", [
    "epoch=3 accuracy=0.9512 loss=0.2", "e=20_==\t7", "accuracy=0.5x=1", "a-b|c = -1.5e-3,d=", "x=y=1", "=1 a= 2",
    "ab=cd=ef=1.0.2", "naïve=1 ünit = 2", "lr=1e-3acc=0.5", "|=1 -=2", "a=1=2=3", "  k =  .5e+2x"])
def test_the_default_format_reads_what_katibs_regex_reads(line: str) -> None:
    """The linear matcher gives exactly re.finditer(DEFAULT_FORMAT)'s matches."""
    want = [(m.span(), m.groups()) for m in re.finditer(DEFAULT_FORMAT, line)]
    assert [(m.span(), m.groups()) for m in default_matches(line)] == want
