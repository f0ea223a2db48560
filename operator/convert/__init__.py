"""`autotune convert`: Katib Experiments, NNI experiment configs and Azure ML sweep jobs as
AutoTuneExperiments.

One module per source format (``katib*.py``, ``nni.py``, ``azure*.py``), each a pure function from the
parsed document to a :class:`Conversion` (the manifest and one note per thing not
carried over exactly); ``command.py`` does the reading, writing and printing.
"""

from __future__ import annotations

from typing import Any, Mapping

from autotune_operator.convert.azure import convert_azure, is_azure
from autotune_operator.convert.common import Conversion, ConvertError
from autotune_operator.convert.katib import convert_katib, is_katib
from autotune_operator.convert.nni import convert_nni, is_nni
from autotune_operator.spec import KIND


def detect(doc: Any) -> str:
    """'katib', 'nni' or 'azure'; ConvertError naming what is missing otherwise."""
    if not isinstance(doc, Mapping):
        raise ConvertError("", f"the file must hold a YAML mapping (a Katib Experiment, an NNI config or an Azure ML "
                           f"sweep job), "
                           f"got {type(doc).__name__}")
    if doc.get("kind") == KIND:
        raise ConvertError("kind", f"is already {KIND}; nothing to convert (check it with `autotune validate`)")
    if is_katib(doc):
        return "katib"
    if is_azure(doc):  # before NNI: a sweep job's `trial` mapping would read as NNI v1's
        return "azure"
    if is_nni(doc):
        return "nni"
    raise ConvertError("apiVersion", "neither a Katib Experiment (apiVersion kubeflow.org/v1beta1, kind Experiment), "
                       "an NNI experiment config (trialCommand) nor an Azure ML sweep job (type: sweep)")


__all__ = ["Conversion", "ConvertError", "convert_azure", "convert_katib", "convert_nni", "detect"]
