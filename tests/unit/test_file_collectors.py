"""spec.metricsCollector kinds File and TensorFlowEvent: the spec's checks name the field, the
parsers (JSON lines, event scalars by Katib's naming rule) and what they say when no
objective came, and local mode's per-trial metrics path."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from autotune_operator.collect_metrics_command import why_nothing
from autotune_operator.executors.local import LocalExecutor, ProcessTemplate
from autotune_operator.executors.metrics_path import PathPlan, not_given_message, plan_path
from autotune_operator.json_metrics import JsonLineParser
from autotune_operator.log_metrics import Collected, LogParser
from autotune_operator.metric_files import FileSource, not_a_metrics_file, read_new
from autotune_operator.metric_parsers import parser_for, why_no_objective
from autotune_operator.spec import MetricsCollectorSpec, SpecError, reads_files, validate_manifest
from autotune_operator.tfevent_metrics import EventLineParser, katib_matches

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def experiment(collector: dict[str, Any], **spec: Any) -> dict[str, Any]:
    doc = yaml.safe_load((EXAMPLES / "digits-file.yaml").read_text())
    doc["spec"]["metricsCollector"] = collector
    doc["spec"].update(spec)
    return doc


def problems(doc: dict[str, Any]) -> list[str]:
    try:
        validate_manifest(doc)
    except SpecError as e:
        return e.problems
    return []


@pytest.mark.parametrize("collector, spec, expected", [
    ({"kind": "File"}, {}, "spec.metricsCollector.path: is required for kind File: the file the trial writes"),
    ({"kind": "TensorFlowEvent"}, {}, "spec.metricsCollector.path: is required for kind TensorFlowEvent: the directory"),
    ({"kind": "StdOut", "path": "/x"}, {}, "spec.metricsCollector.path: is for kind File or TensorFlowEvent"),
    ({"kind": "StdOut", "format": "JSON"}, {}, "spec.metricsCollector.format: is for kind File"),
    ({"kind": "TensorFlowEvent", "path": "/d", "format": "TEXT"}, {}, "spec.metricsCollector.format: is for kind File"),
    ({"kind": "File", "path": "/x", "format": "CSV"}, {}, "spec.metricsCollector.format: Input should be 'TEXT' or 'JSON'"),
    ({"kind": "File", "path": "/x", "format": "JSON", "metricsFormat": ["(a)=(b)"]}, {},
     "spec.metricsCollector.metricsFormat: is for kind StdOut and File with format TEXT"),
    ({"kind": "TensorFlowEvent", "path": "/d", "metricsFormat": ["(a)=(b)"]}, {},
     "spec.metricsCollector.metricsFormat: is for kind StdOut and File with format TEXT"),
    ({"kind": "File", "path": "/logs/"}, {}, "spec.metricsCollector.path: '/logs/' ends with '/'"),
    ({"kind": "TensorFlowEvent", "path": "/"}, {}, "spec.metricsCollector.path: is no place for metrics files"),
    ({"kind": "File", "path": ""}, {}, "spec.metricsCollector.path: String should have at least 1 character"),
    ({"kind": "File", "path": "/x" * 600}, {}, "spec.metricsCollector.path: String should have at most 1024"),
    ({"kind": "PrometheusMetric"}, {}, "spec.metricsCollector.kind: is not supported; the kinds are StdOut"),
    ({"kind": "File", "path": "/m.log"}, {"primaryMetric": None},
     "spec.metricsCollector: needs spec.primaryMetric (or spec.objectives)"),
    # TEXT lines are read with the default format, whose names cannot hold '/'.
    ({"kind": "File", "path": "/m.log"}, {"primaryMetric": "val/acc"},
     "spec.primaryMetric: 'val/acc' can never be read with the default metricsFormat"),
])
def test_bad_collectors_are_refused_naming_the_field(collector: dict[str, Any], spec: dict[str, Any],
                                                      expected: str) -> None:
    got = problems(experiment(collector, **spec))
    assert any(p.startswith(expected) for p in got), got


def test_good_collectors_are_accepted() -> None:
    for collector, spec in (
        ({"kind": "File", "path": "/var/log/katib/metrics.log"}, {}),
        ({"kind": "File", "path": "metrics.log", "format": "TEXT", "metricsFormat": [r"(\w+): (\S+)"]}, {}),
        # JSON keys and event tags may hold '/': the default format's name rule does not apply.
        ({"kind": "File", "path": "/m.json", "format": "JSON", "additionalMetricNames": ["val/loss"]},
         {"primaryMetric": "val/acc"}),
        ({"kind": "TensorFlowEvent", "path": "/var/log/katib/tfevent/"}, {"primaryMetric": "test/accuracy"}),
    ):
        assert problems(experiment(collector, **spec)) == [], collector
    assert reads_files(MetricsCollectorSpec(kind="File", path="/x"))
    assert not reads_files(MetricsCollectorSpec(kind="StdOut")) and not reads_files(None)


# ----- parsers -----

def test_json_lines() -> None:
    p = JsonLineParser(frozenset({"accuracy", "loss"}), "the metrics file /m.json")
    got = p.feed([
        '{"epoch": 0, "accuracy": 0.5, "loss": "1.25", "timestamp": "2021-12-02T14:27:51"}',
        "",
        '{"accuracy": true, "loss": null}',  # a boolean and a null are no values
        '{"accuracy": "NaN", "loss": 1e999}',  # nor are non-finite ones (1e999 reads as inf)
        "not json",
        "[1, 2]",  # JSON, but not an object
        '{"accuracy": 0.75}',
    ])
    assert got == [Collected("accuracy", 0.5, 0), Collected("loss", 1.25, 0), Collected("accuracy", 0.75, 1)]
    assert p.counts == {"accuracy": 2, "loss": 1} and p.bad_lines == 2 and p.first_bad == "not json"
    assert list(p.others) == ["epoch"]  # timestamp is Katib's reserved key, not a metric someone forgot


def test_json_why_no_objective_says_what_was_there() -> None:
    p = JsonLineParser(frozenset({"accuracy"}), "the metrics file /m.json")
    p.feed(['{"acc": 0.9, "epoch": 1}', "accuracy=0.9"])
    why = why_no_objective(p, ["accuracy"])
    assert why.startswith("no value of 'accuracy' was read from the metrics file /m.json")
    assert "its objects hold 'acc', 'epoch'" in why and "1 line(s) were not JSON objects, the first: 'accuracy=0.9'" in why
    assert why_no_objective(JsonLineParser(frozenset({"a"}), "the metrics file /m"), ["a"]).endswith(
        "; it wrote nothing there")


@pytest.mark.parametrize("name, directory, tag, hit", [
    ("accuracy", "/logs/train", "accuracy", True),
    ("accuracy", "/logs", "accuracy_top5", True),  # Katib's prefix match on the tag
    ("accuracy", "/logs", "val_accuracy", False),
    ("train/accuracy", "/logs/train", "accuracy", True),
    ("train/accuracy", "/logs/test", "accuracy", False),
    ("train/accuracy", "/logs/mytrain", "accuracy", True),  # Katib's string suffix on the directory
    ("train/accuracy", "/logs", "train/accuracy", True),  # AutoTune: the whole tag is the name
    ("train/accuracy", "/logs", "test/accuracy", False),
    ("a/b/loss", "/x/a/b", "loss", True),
    ("a/b/loss", "/x/b", "loss", False),
])
def test_katibs_naming_rule(name: str, directory: str, tag: str, hit: bool) -> None:
    assert katib_matches(name, directory, tag) is hit


def scalar(d: str, tag: str, step: int, value: float) -> str:
    return json.dumps({"dir": d, "tag": tag, "step": step, "value": value})


def test_event_lines() -> None:
    p = EventLineParser(("test/accuracy", "train/accuracy", "loss"), "/var/log/katib/tfevent/")
    got = p.feed([scalar("train", "accuracy", 0, 0.9), scalar("test", "accuracy", 0, 0.8),
                  scalar("test", "loss", 3, 0.5), scalar("", "lr", 0, 0.1), scalar("test", "accuracy", -1, 0.1),
                  "garbage", scalar("test", "accuracy", 1, 0.85)])
    assert got == [Collected("train/accuracy", 0.9, 0), Collected("test/accuracy", 0.8, 0), Collected("loss", 0.5, 3),
                   Collected("test/accuracy", 0.85, 1)]
    assert p.counts == {"train/accuracy": 1, "test/accuracy": 2, "loss": 1} and p.bad_lines == 1
    assert list(p.others) == ["lr"]


def test_steps_that_do_not_grow_within_a_file_are_renumbered() -> None:
    """PyTorch's add_scalar(tag, value) without a step writes every event at step 0: each
    value still counts, as later steps; the same file read again gives the same steps."""
    lines = [json.dumps({"dir": "", "file": "f1", "tag": "acc", "step": 0, "value": v}) for v in (0.1, 0.2, 0.3)]
    lines.append(json.dumps({"dir": "", "file": "f1", "tag": "acc", "step": 10, "value": 0.4}))
    # Another file (a second writer) keeps its own steps: the tuner server keeps the first
    # value of a step it has, so a restarted writer's repeated steps are not new values.
    lines.append(json.dumps({"dir": "", "file": "f2", "tag": "acc", "step": 0, "value": 0.9}))
    steps = [(c.step, c.value) for c in EventLineParser(("acc",), "/l").feed(lines)]
    assert steps == [(0, 0.1), (1, 0.2), (2, 0.3), (10, 0.4), (0, 0.9)]
    p = EventLineParser(("acc",), "/l")
    assert [c.step for c in p.feed(lines[:2]) + p.feed(lines[2:])] == [0, 1, 2, 10, 0]  # read in parts: the same


def test_event_why_no_objective() -> None:
    p = EventLineParser(("test/accuracy",), "/logs")
    p.feed([scalar("validation", "epoch_accuracy", 0, 0.9)])
    why = why_no_objective(p, ["test/accuracy"])
    assert why.startswith("no value of 'test/accuracy' was read from the event files under /logs (a scalar whose tag "
                          "starts with 'accuracy' in an event file under a directory ending 'test')")
    assert "it wrote the scalars 'validation/epoch_accuracy' (directory/tag)" in why
    assert why_no_objective(EventLineParser(("a",), "/logs"), ["a"]).endswith("no scalar was found there "
                                                                             "(event files named *tfevents*)")


def test_parser_for_each_kind() -> None:
    names = ["accuracy", "loss"]
    text = parser_for(MetricsCollectorSpec(kind="File", path="/m.log"), names)
    assert isinstance(text, LogParser) and text.feed(["accuracy=0.5"]) == [Collected("accuracy", 0.5, 0)]
    assert "from the metrics file /m.log" in why_no_objective(text, ["loss"])
    assert isinstance(parser_for(MetricsCollectorSpec(kind="File", path="/m", format="JSON"), names), JsonLineParser)
    assert isinstance(parser_for(MetricsCollectorSpec(kind="TensorFlowEvent", path="/d"), names), EventLineParser)
    stdout = parser_for(MetricsCollectorSpec(kind="StdOut"), names)
    assert isinstance(stdout, LogParser) and "from its output" in why_no_objective(stdout, ["accuracy"])


# ----- local mode's per-trial path -----

@pytest.mark.parametrize("spec_path, command, env, expected", [
    ("/var/log/katib/metrics.log", ["python", "t.py", "--log", "/var/log/katib/metrics.log"], {},
     PathPlan("/var/log/katib/metrics.log")),
    ("/var/log/katib/metrics.log", ["python", "t.py", "--log=/var/log/katib/metrics.log"], {},
     PathPlan("/var/log/katib/metrics.log")),
    ("/var/log/katib/metrics.log", ["python", "t.py"], {"LOG": "/var/log/katib/metrics.log"},
     PathPlan("/var/log/katib/metrics.log")),
    # A directory above the path (Katib's tf-mnist-with-summaries), the longest one given.
    ("/logs/test", ["python", "t.py", "--log-path=/logs"], {}, PathPlan("/logs", "test")),
    ("/a/b/c/m.log", ["python", "t.py", "--dir", "/a/b", "--other", "/a"], {}, PathPlan("/a/b", "c/m.log")),
    # The path inside a longer one is not it; nor is a directory above it followed by more path.
    ("/tmp/m.log", ["python", "t.py", "/tmp/m.log.bak", "/data/tmp/m.log", "--cache", "/tmp/cache"], {}, None),
    # A script reading $AUTOTUNE_METRICS_PATH: listed in env, or referred to in args.
    ("/m.log", ["python", "t.py"], {"AUTOTUNE_METRICS_PATH": "x"}, PathPlan("/m.log")),
    ("/m.log", ["python", "t.py", "--out", "$(AUTOTUNE_METRICS_PATH)"], {}, PathPlan("/m.log")),
    ("logs/m.log", ["python", "t.py", "./logs/m.log"], {}, PathPlan("logs/m.log")),
    # Katib's TensorFlowEvent default ends with '/'.
    ("/var/log/katib/tfevent/", ["python", "t.py", "--log-dir=/var/log/katib/tfevent/"], {},
     PathPlan("/var/log/katib/tfevent")),
    ("/m.log", ["python", "t.py"], {}, None),
])
def test_plan_path(spec_path: str, command: list[str], env: dict[str, str], expected: PathPlan | None) -> None:
    assert plan_path(spec_path, command, env) == expected


def test_replacing_the_path() -> None:
    trial = Path("/out/trials/t-1")
    plan = PathPlan("/logs")
    assert plan.replace("--train=/logs/train --test /logs/test /logs2 /x/logs", trial) == (
        "--train=/out/trials/t-1/metrics/logs/train --test /out/trials/t-1/metrics/logs/test /logs2 /x/logs")
    assert plan.trial_path(trial) == Path("/out/trials/t-1/metrics/logs")
    above = PathPlan("/logs", "test")  # a directory above: only where it is given whole
    assert above.replace("--log-path=/logs --data /logs/data", trial) == (
        "--log-path=/out/trials/t-1/metrics/logs --data /logs/data")
    assert above.trial_path(trial) == Path("/out/trials/t-1/metrics/logs/test")
    assert PathPlan("logs/m.log").replace("./logs/m.log", trial) == "/out/trials/t-1/metrics/m.log"
    msg = not_given_message(MetricsCollectorSpec(kind="File", path="/m.log"), "spec...containers[0]")
    assert "AUTOTUNE_METRICS_PATH" in msg and "--metrics-path, /m.log" in msg


def test_local_read_log_reads_the_trials_own_file(tmp_path: Path) -> None:
    mc = MetricsCollectorSpec(kind="File", path="/var/log/katib/metrics.log", format="JSON")
    ex = LocalExecutor(ProcessTemplate((sys.executable, "t.py", "--log", "/var/log/katib/metrics.log"), {},
                                       str(tmp_path)), tmp_path, collector=mc)
    path = ex.metrics_path("t-1")
    assert path == tmp_path / "trials" / "t-1" / "metrics" / "metrics.log"
    assert ex.read_log("t-1", None) is None  # not written yet
    # Once the trial ended, a file it never wrote reads as empty: its failure says nothing came.
    end = ex.read_log("t-1", None, final=True)
    assert end is not None and end.lines == ()
    path.parent.mkdir(parents=True)
    path.write_text('{"accuracy": 0.5}\n')
    chunk = ex.read_log("t-1", None)
    assert chunk is not None and chunk.lines == ('{"accuracy": 0.5}',)


@pytest.mark.parametrize("spec_path, command", [
    ("../../x/m.log", ["sh", "-c", "cd .. && python t.py"]),
    ("../m.log", ["python", "t.py", "--up", ".."]),
    ("../logs/m.log", ["python", "t.py", "--root", ".."]),
])
def test_a_path_climbing_with_dotdot_stays_in_the_trials_folder(spec_path: str, command: list[str]) -> None:
    """'..' in the command (cd .., a parent-directory argument) is no directory above the
    spec's path given to the trial: taking it as one put the trial's metrics path outside its
    own folder (trials/x/m.log, shared by concurrent trials) and rewrote the unrelated '..'."""
    assert plan_path(spec_path, command, {}) is None  # the path is given nowhere: refused
    plan = plan_path(spec_path, command, {"AUTOTUNE_METRICS_PATH": spec_path})
    assert plan is not None
    trial = Path("/out/trials/t-1")
    path = plan.trial_path(trial)
    assert ".." not in path.parts and path.is_relative_to(trial / "metrics")
    assert plan.replace(" ".join(command), trial) == " ".join(command)
    assert plan_path("..", ["python", "t.py"], {"AUTOTUNE_METRICS_PATH": ".."}).trial_path(trial) == (  # type: ignore[union-attr]
        trial / "metrics" / "metrics")


def test_event_files_read_again_from_their_start_repeat_no_value() -> None:
    """A restarted autotune-metrics sidecar relays the event files from their start again
    (docs/kubernetes.md: 'event files keep their own steps, so nothing repeats'): the values
    get their first read's steps back, which the tuner server already holds and skips. Only
    a file whose steps never grow (everything at step 0) cannot tell a re-read from new values."""
    def line(step: int, value: float, tag: str = "acc") -> str:
        return json.dumps({"dir": "", "file": "f1", "tag": tag, "step": step, "value": value})

    for steps in ([0, 1, 2], [5, 5, 5, 6], [0, 3, 3, 7]):
        lines = [line(s, 0.1 * (i + 1)) for i, s in enumerate(steps)]
        p = EventLineParser(("acc",), "/l")
        first = [(c.step, c.value) for c in p.feed(lines)]
        again = [(c.step, c.value) for c in p.feed(lines)]
        assert again == first, steps
    p = EventLineParser(("acc",), "/l")  # new values after the re-read go on from where they were
    p.feed([line(0, 0.1), line(1, 0.2), line(1, 0.25)])
    assert [c.step for c in p.feed([line(0, 0.1), line(1, 0.2), line(1, 0.25), line(2, 0.3)])] == [0, 1, 2, 3]


def test_a_json_integer_too_large_for_a_float_is_skipped_not_raised() -> None:
    """float() of a 400-digit JSON integer raises OverflowError: raised from feed, the
    controller kept the chunk's cursor and read the same line every pass, so nothing the
    trial wrote after it was ever collected."""
    p = JsonLineParser(frozenset({"accuracy"}), "the metrics file /m.log")
    got = p.feed(['{"accuracy": 1' + "0" * 400 + "}", '{"accuracy": 0.9}'])
    assert got == [Collected("accuracy", 0.9, 0)]
    e = EventLineParser(("accuracy",), "/l")
    assert e.feed(['{"dir": "", "file": "f", "tag": "accuracy", "step": 0, "value": 1' + "0" * 400 + "}"]) == []


def test_a_path_given_through_an_env_variable_of_another_is_the_trials_own(tmp_path: Path) -> None:
    """env LOG: $(BASE)/metrics.log with BASE: /var/log/katib: BASE was replaced only after
    $(BASE) had been expanded, so LOG kept the spec's path, which a pattern for the directory
    above no longer matched: the trial wrote the machine's /var/log/katib/metrics.log (shared
    by every trial) and the collector read its own empty path. Real process."""
    import time

    from autotune_operator.executors.base import TrialLaunch

    mc = MetricsCollectorSpec(kind="File", path="/var/log/katib/metrics.log")
    code = "import os; print(os.environ['LOG']); print(os.environ['BASE']); print(os.sys.argv[1])"
    env = {"BASE": "/var/log/katib", "LOG": "$(BASE)/metrics.log"}
    ex = LocalExecutor(ProcessTemplate((sys.executable, "-c", code, "$(LOG)"), env, str(tmp_path)), tmp_path,
                       collector=mc)
    ex.launch(TrialLaunch("t-1", 0, {}))
    deadline = time.monotonic() + 30
    while not ex.poll() and time.monotonic() < deadline:
        ex.wait(0.1)
    own = ex.metrics_path("t-1")
    assert own == tmp_path / "trials" / "t-1" / "metrics" / "katib" / "metrics.log"
    log = (tmp_path / "trials" / "t-1" / "trial.log").read_text().splitlines()
    assert log[-3:] == [str(own), str(own.parent), str(own)]


def test_a_directory_at_a_file_path_is_named_so_by_the_sidecar_and_reads_as_missing(tmp_path: Path) -> None:
    source = FileSource("File", tmp_path)
    assert why_nothing(source) == not_a_metrics_file(source) == f"{tmp_path} is a directory, not a metrics file"
    assert read_new(source, None, final=True) is None
    assert not_a_metrics_file(FileSource("TensorFlowEvent", tmp_path)) is None
