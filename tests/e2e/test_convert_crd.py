"""Every converted corpus file is accepted by the real kube-apiserver: the CRD's schema and
its admission policy, not only `autotune validate`, take what `autotune convert` writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from autotune_operator.cli import main
from tests.e2e.test_operator_helpers import install_crd

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "convert"
SOURCES = sorted(p.relative_to(CORPUS).as_posix() for p in [*CORPUS.glob("katib/*.yaml"), *CORPUS.glob("nni/*.yml")])


@pytest.fixture(scope="module")
def crd(kube_cluster):
    install_crd(kube_cluster)


def test_converted_corpus_applies(kube_cluster, crd, tmp_path: Path) -> None:
    ns = kube_cluster.new_namespace("convert")
    for source in SOURCES:
        out = tmp_path / (Path(source).stem + ".yaml")
        assert main(["convert", str(CORPUS / source), "-o", str(out), "--image", "python:3.11"]) == 0, source
        doc = yaml.safe_load(out.read_text())
        doc["metadata"].pop("namespace", None)  # Katib's examples name 'kubeflow'
        r = kube_cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(doc), check=False)
        assert r.returncode == 0, f"{source}: {r.stderr}"
        got = json.loads(kube_cluster.kubectl("get", "ate", doc["metadata"]["name"], "-n", ns, "-o", "json").stdout)
        assert json.loads(got["spec"]["searchSpace"]) == json.loads(doc["spec"]["searchSpace"]), source
        assert got["spec"]["trainingConfig"] == doc["spec"]["trainingConfig"], source
