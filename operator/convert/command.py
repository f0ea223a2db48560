"""`autotune convert SOURCE [-o OUT] [--search-space FILE] [--image IMAGE]`: the I/O around
the pure converters. Prints (or writes) the AutoTuneExperiment, checked by AutoTune's own
validator, and one stderr line per note. Exit 0 converted, 2 not understood.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from autotune_operator.convert import Conversion, ConvertError, convert_azure, convert_katib, convert_nni, detect
from autotune_operator.convert.nni import canonical_keys
from autotune_operator.spec import SpecError, _StrictLoader, _yaml_problem, validate_manifest

EXIT_OK, EXIT_INVALID = 0, 2
NNI_IMPORT = re.compile(r"^\s*(import\s+nni\b|from\s+nni(\.|\s+import)\b)", re.MULTILINE)
# Azure ML's v1 logging (azureml.core's Run.get_context().log), which no sweep outside Azure reads.
AZUREML_RUN = re.compile(r"^\s*(import\s+azureml\.core\b|from\s+azureml\.core(\.run)?\s+import\b)", re.MULTILINE)
MAX_SCANNED = 500  # files of trialCodeDirectory (trial.code) looked at for `import nni` (azureml.core)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a Katib Experiment (kubeflow.org/v1beta1), an NNI experiment config or an Azure ML "
                   "sweep job (type: sweep), as YAML")
    p.add_argument("-o", "--output", help="write the AutoTuneExperiment here (default: standard output)")
    p.add_argument("--search-space", help="NNI: the search-space JSON file (default: the config's searchSpaceFile)")
    p.add_argument("--image", help="NNI, Azure: the container image trials run in on a cluster")


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the search space's JSON) as |- blocks, as the README writes them."""


def _str(dumper: yaml.SafeDumper, s: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None)


_Dumper.add_representer(str, _str)


def render(conv: Conversion, source: str) -> str:
    """The manifest as YAML, its search space and classArgs as JSON text (the manual's form),
    the notes repeated as comments so they travel with the file."""
    m = json.loads(json.dumps(conv.manifest))  # a deep copy
    spec = m["spec"]
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in spec["searchSpace"].items()]
    spec["searchSpace"] = "{\n" + ",\n".join(lines) + "\n}"
    for block in ("tuner", "advisor", "assessor"):
        if block in spec:
            spec[block]["classArgs"] = json.dumps(spec[block]["classArgs"])
    head = [f"# Converted from {source} ({conv.source}) by `autotune convert`."]
    if conv.notes:
        head.append("# Not carried over exactly:")
        head += [f"#  - {n}" for n in conv.notes]
    body = yaml.dump(m, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)
    return "\n".join(head) + "\n" + body


def _load(path: str) -> tuple[Any, list[str]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConvertError("", f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConvertError("", f"{path} is not UTF-8 text") from None
    try:
        docs = [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
    except yaml.YAMLError as e:
        raise ConvertError("", _yaml_problem(path, e)) from None
    except RecursionError:  # PyYAML's parser recurses once per level of [ or {
        raise ConvertError("", f"{path} is not valid YAML: nested too deeply to read (thousands of levels)") from None
    if len(docs) == 1:
        return docs[0], []
    # Katib's examples often ship the Experiment with its ConfigMap or PVC in one file.
    exps = [d for d in docs if isinstance(d, dict) and d.get("kind") == "Experiment"]
    if len(exps) != 1:
        raise ConvertError("", f"{path} holds {len(docs)} YAML documents and {len(exps)} of them are a Katib "
                           f"Experiment; give it exactly one experiment")
    others = [f"{d.get('kind')} {(d.get('metadata') or {}).get('name')}" for d in docs
              if d is not exps[0] and isinstance(d, dict)]
    return exps[0], [f"{path}: the other documents ({', '.join(others)}) are not converted; apply them as they are"]


def _search_space(args: argparse.Namespace, doc: dict[str, Any], config_dir: Path) -> Any:
    given, field = args.search_space, "--search-space"
    if given is None:
        for key in ("searchSpaceFile", "searchSpacePath"):
            if doc.get(key):
                given, field = str(doc[key]), key
                break
        if given is None:
            return None
        path = Path(os.path.expanduser(given))
        path = path if path.is_absolute() else config_dir / path
    else:
        path = Path(given)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise ConvertError(field, f"cannot read the search space {path}: {why} (pass --search-space FILE)") from None
    try:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            try:  # NNI reads JSON; a YAML file of the same shape is accepted too
                return yaml.load(text, Loader=_StrictLoader)
            except yaml.YAMLError as e:
                raise ConvertError(field, f"{path} is neither JSON nor YAML ({_yaml_problem(str(path), e)})") from None
    except RecursionError:
        raise ConvertError(field, f"{path} is nested too deeply to read (thousands of levels of [ or {{)") from None


def files_importing(code_dir: Path, pattern: re.Pattern[str]) -> list[str]:
    """Python files under the trial code directory whose imports match ``pattern`` (relative paths)."""
    found: list[str] = []
    if not code_dir.is_dir():
        return found
    for i, f in enumerate(sorted(code_dir.rglob("*.py"))):
        if i >= MAX_SCANNED:
            break
        try:
            if pattern.search(f.read_text(encoding="utf-8", errors="replace")):
                found.append(str(f.relative_to(code_dir)))
        except OSError:
            continue
    return found


def convert_file(args: argparse.Namespace) -> Conversion:
    doc, extra = _load(args.source)
    kind = detect(doc)
    if kind == "katib":
        conv = convert_katib(doc)
        conv.notes[:0] = extra
        return conv
    config_dir = Path(args.source).resolve().parent
    out_dir = Path(args.output).resolve().parent if args.output else Path.cwd()
    if kind == "azure":
        if args.search_space:
            raise ConvertError("--search-space", "is for NNI configs; an Azure sweep job holds its search_space")
        conv = convert_azure(doc, code_base=os.path.relpath(config_dir, out_dir), default_name=Path(args.source).stem,
                             image=args.image)
        code = (doc.get("trial") or {}).get("code") or "."
        files = files_importing(config_dir / os.path.expanduser(str(code)), AZUREML_RUN)
        if files:
            conv.notes.append(f"trial code: {', '.join(files[:10])}{' ...' if len(files) > 10 else ''} import "
                              f"azureml.core (Azure ML v1's Run.get_context().log): AutoTune reads metrics logged "
                              f"with MLflow, as CLI v2 sweep jobs do: log the primary metric with mlflow.log_metric")
        return conv
    doc = canonical_keys(doc)  # search_space_file, trial_code_directory: NNI's snake_case spellings
    conv = convert_nni(doc, search_space=_search_space(args, doc, config_dir),
                       code_base=os.path.relpath(config_dir, out_dir), default_name=Path(args.source).stem,
                       image=args.image)
    code = str(doc.get("trialCodeDirectory") or (doc.get("trial") or {}).get("codeDir") or ".")
    files = files_importing(config_dir / os.path.expanduser(code), NNI_IMPORT)
    if files:
        conv.notes[-1] += f"; files that import nni: {', '.join(files[:10])}{' ...' if len(files) > 10 else ''}"
    return conv


def run(args: argparse.Namespace) -> int:
    try:
        conv = convert_file(args)
    except ConvertError as e:
        print(f"autotune: convert: {e}", file=sys.stderr)
        return EXIT_INVALID
    try:
        validate_manifest(conv.manifest)
    except SpecError as e:
        print(f"autotune: convert: the converted experiment is not valid: {'; '.join(e.problems)}", file=sys.stderr)
        return EXIT_INVALID
    text = render(conv, Path(args.source).name)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            print(f"autotune: convert: cannot write {args.output}: {e.strerror}", file=sys.stderr)
            return EXIT_INVALID
    else:
        sys.stdout.write(text)
    for n in conv.notes:
        print(f"autotune: convert: {n}", file=sys.stderr)
    return EXIT_OK
