"""AutoTuneExperiments made before a refusal existed (an older CRD, no admission policy) stay
deletable once crds/ is upgraded: the operator removes its finalizer on delete, an UPDATE
the apiserver validates, and a rule that refused the old object there would hold it for
ever (and refuse every status write). On the real kube-apiserver."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from tests.e2e.test_operator_helpers import CRD, SEED_EXAMPLE, install_crd, wait_for

POLICY_BINDING = "validatingadmissionpolicybinding/autotuneexperiments.tensorstack.dev-immutable-spec"


def _old_crd(drop: Callable[[dict[str, Any]], bool]) -> str:
    """The CRD without the CEL rules ``drop`` picks (wherever they are): as before they existed."""
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "x-kubernetes-validations" in node:
                node["x-kubernetes-validations"] = [r for r in node["x-kubernetes-validations"] if not drop(r)]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    doc = yaml.safe_load(Path(CRD).read_text())
    walk(doc)
    return yaml.safe_dump(doc)


def _self_warm_start(doc: dict[str, Any]) -> None:
    doc["spec"]["warmStart"] = {"experiments": [doc["metadata"]["name"]]}


def _blank_primary_metric(doc: dict[str, Any]) -> None:
    doc["spec"]["primaryMetric"] = "  "


def _blank_warm_start_source(doc: dict[str, Any]) -> None:
    doc["spec"]["warmStart"] = {"experiments": ["older", "  "]}


def _experiment(name: str, edit: Callable[[dict[str, Any]], None]) -> str:
    doc = yaml.safe_load(SEED_EXAMPLE)
    doc["metadata"] = {"name": name, "finalizers": ["example.com/hold"]}  # as the operator's finalizer
    edit(doc)
    return json.dumps(doc)


@pytest.mark.parametrize("drop, edit, refused", [
    # 026e5b1 put this one at the CRD's root: refused on every update of an old object
    (lambda r: "warmStart" in r["rule"], _self_warm_start, "is this experiment itself"),
    # a field's rule: ratcheted (not checked on an update that leaves the field as it was)
    (lambda r: "trim()" in r["rule"], _blank_primary_metric, "must name a metric, not be blank"),
    # a rule on a list's items (atomic list): the old object's unchanged list is not refused either
    (lambda r: r.get("message", "").startswith("must name an earlier experiment"), _blank_warm_start_source,
     "must name an earlier experiment, not be blank"),
], ids=["warm-start-itself", "blank-primary-metric", "blank-warm-start-source"])
def test_an_experiment_made_before_a_refusal_can_still_be_deleted(kube_cluster, drop, edit, refused):
    ns = kube_cluster.new_namespace("crd-old")
    name = "experiment-sample"
    text = _experiment(name, edit)

    def created() -> bool:  # (the binding's removal reaches the policy plugin after a moment)
        r = kube_cluster.kubectl("create", "-n", ns, "-f", "-", input=text, check=False)
        return r.returncode == 0 or "AlreadyExists" in r.stderr

    kube_cluster.kubectl("apply", "-f", "-", input=_old_crd(drop))
    kube_cluster.wait_crd_established("autotuneexperiments.tensorstack.dev")
    kube_cluster.kubectl("delete", POLICY_BINDING, "--ignore-not-found")
    try:
        wait_for(created, 60, "the experiment created under the old CRD, without the policy")
    finally:
        install_crd(kube_cluster)
    # The refusal is in force again: a new object like it is refused ... (a dry run: a real
    # create made before the new rule or binding reached the apiserver's checks would succeed,
    # and every later try would then be AlreadyExists, never the refusal)
    wait_for(lambda: refused in kube_cluster.kubectl("create", "--dry-run=server", "-n", ns, "-f", "-",
                                                     input=_experiment("experiment-sample-2", edit), check=False).stderr,
             60, "the refusal in force again")
    # ... but the old one still takes a status write and loses its finalizer.
    r = kube_cluster.kubectl("patch", "ate", name, "-n", ns, "--subresource=status", "--type=merge",
                             "-p", '{"status":{"phase":"ERROR","message":"invalid"}}', check=False)
    assert r.returncode == 0, r.stderr
    kube_cluster.kubectl("delete", "ate", name, "-n", ns, "--wait=false")
    r = kube_cluster.kubectl("patch", "ate", name, "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                             check=False)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: kube_cluster.kubectl("get", "ate", name, "-n", ns, "--ignore-not-found", "-o", "name").stdout == "",
             60, "the experiment gone")
