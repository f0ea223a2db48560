"""The AutoTuneExperiment CRD against a real kube-apiserver: the seed's example applies
unchanged, printer columns work, and the schema refuses what it can check."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.test_operator_helpers import CRD, ROOT, SEED_EXAMPLE, install_crd


@pytest.fixture(scope="module")
def crd(kube_cluster):
    install_crd(kube_cluster)


# The seed's whole searchSpace: |- block, to put another value in its place.
SPACE_BLOCK = SEED_EXAMPLE[SEED_EXAMPLE.index("  searchSpace: |-\n"):SEED_EXAMPLE.index("  trainingConfig:\n")]


def apply(kube_cluster, ns: str, text: str) -> subprocess.CompletedProcess:
    return kube_cluster.kubectl("apply", "-n", ns, "-f", "-", input=text, check=False)


def test_seed_example_applies_unchanged(kube_cluster, crd):
    ns = kube_cluster.new_namespace("crd")
    r = apply(kube_cluster, ns, SEED_EXAMPLE)
    assert r.returncode == 0, r.stderr
    out = kube_cluster.kubectl("get", "ate", "-n", ns).stdout
    header = out.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "TRIALS", "BEST", "FRONT", "AGE"], out
    assert "experiment-sample" in out
    got = kube_cluster.kubectl("get", "autotuneexperiment", "experiment-sample", "-n", ns, "-o",
                               "jsonpath={.spec.trainingConfig.tasks[0].template.spec.containers[0].image}").stdout
    assert got == "t9kpublic/tensorflow-1.15.2:tuner-2.23"  # pod template kept, not pruned


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_applies(kube_cluster, crd, example):
    # The README's `kubectl apply -f examples/...`: the CRD's rules must take each of them.
    ns = kube_cluster.new_namespace("crdex")
    r = apply(kube_cluster, ns, example.read_text())
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "old,new,expect",
    [
        ("maxTrialNum: 50", "maxTrialNum: 0", "spec.maxTrialNum"),
        ("maxTrialNum: 50", 'maxTrialNum: "50"', "spec.maxTrialNum in body must be of type integer"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  finalTraining: {enabled: 'false'}\n",
         "spec.finalTraining.enabled in body must be of type boolean"),
        ("  tuner:\n    builtinTunerName: TPE\n", "  objectives: [" + ", ".join(f"{{name: m{i}, optimizeMode: maximize}}"
         for i in range(9)) + "]\n  tuner:\n    builtinTunerName: MOTPE\n", "spec.objectives: Too many: 9"),
        ("name: experiment-sample", "name: resnet50-imagenet-lr-sweep-with-cosine-schedule-v2",
         "metadata.name: Too long: may not be more than 47"),
        ("trialConcurrency: 3", "trialConcurrency: 0", "spec.trialConcurrency"),
        ("type: tensorflow", "type: mxnet", "spec.trainingConfig.type"),
        ("builtinTunerName: TPE", "builtinTunerName: NoSuchTuner", "spec.tuner.builtinTunerName"),
        ("- type: worker", "- type: launcher", "tensorflow tasks are of type"),
        ("  tuner:\n", "  advisor:\n    builtinAdvisorName: BOHB\n  tuner:\n", "exactly one of spec.tuner"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  maxTrials: 3\n", 'unknown field "spec.maxTrials"'),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: \"\"\n", "spec.primaryMetric"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: accuracy\n  objectives: [{name: a, optimizeMode: maximize},"
         " {name: b, optimizeMode: minimize}]\n", "spec.primaryMetric names the one objective metric"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  metricsCollector: {kind: StdOut}\n",
         "spec.metricsCollector needs spec.primaryMetric"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: accuracy\n  metricsCollector: {kind: Custom}\n",
         "spec.metricsCollector.kind"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: accuracy\n  metricsCollector: {kind: File}\n",
         "spec.metricsCollector.path is required for kind File and TensorFlowEvent"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: accuracy\n  metricsCollector: {kind: StdOut, "
         "path: /m.log}\n", "refused for StdOut"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: accuracy\n  metricsCollector: {kind: "
         "TensorFlowEvent, path: /logs, format: JSON}\n", "spec.metricsCollector.format is for kind File"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: accuracy\n  metricsCollector: {kind: File, "
         "path: /m.log, format: JSON, metricsFormat: ['(a)=(b)']}\n",
         "spec.metricsCollector.metricsFormat is for kind StdOut and File with format TEXT"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: accuracy\n  metricsCollector: {kind: StdOut, "
         "metricsFormat: []}\n", "spec.metricsCollector.metricsFormat"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  metricStrategies: [{name: a, value: max}]\n",
         "spec.metricStrategies choose among logged values"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: a\n  metricStrategies: [{name: a, value: best}]\n",
         "spec.metricStrategies[0].value"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: a\n  metricStrategies: [{name: a, value: max}, "
         "{name: a, value: min}]\n", "each metricStrategies name may appear once"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  objectiveGoal: 0.5\n  objectives: [{name: a, optimizeMode: "
         "maximize}, {name: b, optimizeMode: minimize}]\n", "spec.objectiveGoal applies to a single objective"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: accuracy\n  metricsCollector: {kind: File, "
         "path: /var/log/katib/}\n", "kind File reads one file: name the file"),
        # What `autotune validate` refuses with the same words (tests/unit/test_crd_refusals.py):
        # a blank metric name, a warmStart naming the experiment itself, a searchSpace or
        # storage that is neither a string nor a mapping (the admission policy: CEL in the CRD
        # cannot see these schemaless fields).
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: \" \\t\"\n",
         "spec.primaryMetric: Invalid value: \"string\": must name a metric, not be blank"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: a\n  metricStrategies: [{name: a, value: max}, "
         "{name: '  ', value: min}]\n", "spec.metricStrategies[1].name: Invalid value: \"string\": must name a metric"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  warmStart: {experiments: [older, experiment-sample]}\n",
         "spec.warmStart.experiments: 'experiment-sample' is this experiment itself; name an earlier one"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  warmStart: {experiments: [older, '  ']}\n",
         "spec.warmStart.experiments[1]: Invalid value: \"string\": must name an earlier experiment, not be blank"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: accuracy\n  metricsCollector: {kind: File, "
         "path: '  '}\n", "spec.metricsCollector.path: Invalid value: \"string\": must be a file or directory path"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: accuracy\n  metricsCollector: {kind: "
         "TensorFlowEvent, path: .}\n", "spec.metricsCollector.path: Invalid value: \"string\": is no place for metrics files"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: accuracy\n  metricsCollector: {kind: StdOut, "
         "additionalMetricNames: [loss, ' ']}\n",
         "spec.metricsCollector.additionalMetricNames[1]: Invalid value: \"string\": must name a metric, not be blank"),
        (SPACE_BLOCK, "  searchSpace: [batch_size, learning_rate]\n",
         "spec.searchSpace must be the search space as a JSON string"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  storage: [10Gi]\n", "spec.storage must be a string or a mapping"),
        ("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  storage: 10\n", "spec.storage must be a string or a mapping"),
    ],
)
def test_schema_refuses_invalid(kube_cluster, crd, old, new, expect):
    assert old in SEED_EXAMPLE
    ns = kube_cluster.new_namespace("crdbad")
    r = apply(kube_cluster, ns, SEED_EXAMPLE.replace(old, new))
    assert r.returncode != 0
    assert expect in r.stderr, r.stderr


def test_a_mapping_search_space_storage_and_other_warm_start_source_apply(kube_cluster, crd):
    # The admission policy's shape checks (CREATE and UPDATE) let every valid shape through,
    # and its immutability checks still hold on updates.
    ns = kube_cluster.new_namespace("crdshape")
    text = SEED_EXAMPLE.replace(SPACE_BLOCK, "  searchSpace:\n    lr: {_type: choice, _value: [0.1, 0.01]}\n").replace(
        "  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  storage: {size: 1Gi}\n"
        "  warmStart: {experiments: [experiment-sample-v1]}\n")
    r = apply(kube_cluster, ns, text)
    assert r.returncode == 0, r.stderr
    got = kube_cluster.kubectl("get", "ate", "experiment-sample", "-n", ns, "-o",
                               "jsonpath={.spec.searchSpace.lr._type} {.spec.storage.size}").stdout
    assert got == "choice 1Gi"
    r = apply(kube_cluster, ns, text.replace("maxTrialNum: 50", "maxTrialNum: 60"))
    assert r.returncode == 0, r.stderr
    r = apply(kube_cluster, ns, text.replace("size: 1Gi", "size: 2Gi"))
    assert r.returncode != 0 and "spec.storage cannot change" in r.stderr, r.stderr
    r = apply(kube_cluster, ns, SEED_EXAMPLE.replace("name: experiment-sample", "name: other").replace(
        "  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  storage: 10Gi\n"))
    assert r.returncode == 0, r.stderr


def test_crd_file_is_the_one_in_the_chart():
    from pathlib import Path

    chart_crd = Path(CRD).parent.parent / "helm" / "autotune" / "crds" / "autotuneexperiments.yaml"
    if chart_crd.exists():
        assert chart_crd.read_text() == Path(CRD).read_text()


def test_a_stdout_metrics_collector_applies_and_cannot_change(kube_cluster, crd):
    ns = kube_cluster.new_namespace("crdmc")
    collector = ("  maxExecSeconds: 7200\n  primaryMetric: accuracy\n  metricsCollector:\n    kind: StdOut\n"
                 "    metricsFormat: ['([\\w|-]+)\\s*=\\s*([+-]?\\d*(\\.\\d+)?([Ee][+-]?\\d+)?)']\n"
                 "    additionalMetricNames: [loss]\n")
    text = SEED_EXAMPLE.replace("  maxExecSeconds: 7200\n", collector)
    r = apply(kube_cluster, ns, text)
    assert r.returncode == 0, r.stderr
    got = kube_cluster.kubectl("get", "ate", "experiment-sample", "-n", ns, "-o",
                               "jsonpath={.spec.metricsCollector.metricsFormat[0]}").stdout
    assert got == r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
    r = apply(kube_cluster, ns, text.replace("[loss]", "[loss, f1]"))
    assert r.returncode != 0 and "spec.metricsCollector cannot change" in r.stderr, r.stderr


def test_metric_strategies_apply_and_cannot_change(kube_cluster, crd):
    ns = kube_cluster.new_namespace("crdms")
    text = SEED_EXAMPLE.replace("  maxExecSeconds: 7200\n", "  maxExecSeconds: 7200\n  primaryMetric: accuracy\n"
                                "  metricStrategies:\n    - {name: accuracy, value: max}\n")
    r = apply(kube_cluster, ns, text)
    assert r.returncode == 0, r.stderr
    got = kube_cluster.kubectl("get", "ate", "experiment-sample", "-n", ns, "-o",
                               "jsonpath={.spec.metricStrategies[0].value}").stdout
    assert got == "max"
    r = apply(kube_cluster, ns, text.replace("value: max", "value: latest"))
    assert r.returncode != 0 and "spec.metricStrategies cannot change" in r.stderr, r.stderr
