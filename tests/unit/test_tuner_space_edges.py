"""Search-space edge cases driven through the tuners in-process on hand-made histories:
repeats in nested spaces, value types of carried-over parameters, degenerate spaces."""

from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from tuner_server.history import TrialRecord, TrialState
from tuner_server.searchspace import canonical, parse_search_space
from tuner_server.tuners import NoMoreTrials, create_tuner
from tuner_server.tuners.tpe import flat_key

if TYPE_CHECKING:
    from tuner_server.engine import Engine

NESTED = {
    "opt": {"_type": "choice", "_value": [
        {"_name": "sgd", "lr": {"_type": "loguniform", "_value": [1e-3, 1e-1]}, "m": {"_type": "uniform", "_value": [0, 1]}},
        {"_name": "adam", "lr": {"_type": "quniform", "_value": [0, 1, 0.25]}},
        {"_name": "none"},
    ]},
    "bs": {"_type": "choice", "_value": [16, 32]},
}


def _score(p: Mapping[str, Any]) -> float:
    """A deterministic objective unrelated to the parameters' structure (PYTHONHASHSEED-proof)."""
    return float(zlib.crc32(canonical(p).encode()) % 97)


def _run(tuner: str, space: Mapping[str, Any], n: int, history: list[TrialRecord] | None = None,
         class_args: Mapping[str, Any] | None = None) -> list[TrialRecord]:
    t = create_tuner(tuner, parse_search_space(space), class_args or {}, 0)
    hist = list(history or [])
    for i in range(n):
        try:
            p = t.suggest(hist, np.random.default_rng([0, i]))
        except NoMoreTrials:
            break
        json.dumps(p, allow_nan=False)  # what the server sends
        hist.append(TrialRecord(len(hist), f"t{i}", p, TrialState.SUCCEEDED, _score(p)))
    return hist



def drain(engine: Engine, exp: str, name: str, value: float) -> list[Any]:
    """Run an experiment's suggestions to the end, each trial reporting ``value``: the values
    of parameter ``name`` it handed out."""
    issued = []
    while (a := engine.suggest(exp)) is not None:
        issued.append(a.parameters[name])
        engine.started(exp, a.trial_id)
        engine.report_final(exp, a.trial_id, value)
        engine.end(exp, a.trial_id, 0)
    return issued

def test_flat_key_ignores_key_order() -> None:
    assert flat_key({"opt": 1, "opt/adam/lr": 0.25, "bs": 1}) == flat_key({"opt": 1, "bs": 1, "opt/adam/lr": 0.25})


def test_tpe_never_repeats_a_nested_configuration() -> None:
    # The joint (multivariate) model proposed {opt, bs, opt/adam/lr} in that order; the
    # history's keys are parents first ({opt, opt/adam/lr, bs}), so an order-sensitive key
    # missed the repeat and trial 20 repeated an earlier 'adam' configuration.
    hist = _run("TPE", NESTED, 40)
    keys = [canonical(h.parameters) for h in hist]
    assert len(hist) == 40
    assert len(set(keys)) == len(keys), [k for k in keys if keys.count(k) > 1]


INTS = {
    "r": {"_type": "randint", "_value": [0, 10]},
    "q": {"_type": "quniform", "_value": [0, 10, 2]},
    "u": {"_type": "uniform", "_value": [0, 1]},
}


def _imported(space: Mapping[str, Any], rows: list[dict[str, Any]]) -> list[TrialRecord]:
    """Warm-start trials as the engine shows them, checked as the engine checks them."""
    from tuner_server.warm_start import misfit

    sp = parse_search_space(space)
    out = []
    for i, p in enumerate(rows):
        assert misfit(sp, p) is None, misfit(sp, p)
        out.append(TrialRecord(i, f"imported:src:{i}", p, TrialState.SUCCEEDED, float(i % 7), kind="imported"))
    return out


def test_evolution_hands_out_integers_where_imported_trials_had_floats() -> None:
    # JSON from another tool may write 8.0 for an integer quniform and 3.0 for a randint; the
    # warm-start check accepts them (they are the same numbers). Evolution's children keep
    # all but one parameter of a parent, and passed such floats on to new trials.
    rows = [{"r": float(i % 10), "q": float(2 * (i % 5)), "u": (i % 10) / 10} for i in range(12)]
    hist = _run("Evolution", INTS, 30, _imported(INTS, rows), {"population_size": 4})
    own = [h.parameters for h in hist if h.kind == "search"]
    assert len(own) == 30
    for p in own:
        assert type(p["r"]) is int and 0 <= p["r"] < 10, p
        assert type(p["q"]) is int and p["q"] in (0, 2, 4, 6, 8, 10), p
        assert type(p["u"]) is float and 0 <= p["u"] <= 1, p


def test_batch_refuses_a_nested_choice_saying_so() -> None:
    # One top-level choice, but nested: the message said "exactly one 'choice' parameter ...;
    # this one has 1: ['sets']", true of the space and no help.
    import pytest

    from tuner_server.tuners import TunerArgsError

    space = {"sets": {"_type": "choice", "_value": [{"_name": "a", "lr": {"_type": "uniform", "_value": [0, 1]}}, {"_name": "b"}]}}
    with pytest.raises(TunerArgsError) as e:
        create_tuner("Batch", parse_search_space(space), {})
    assert "nested choice" in str(e.value) and "'sets'" in str(e.value), str(e.value)
    assert "this one has 1" not in str(e.value)


def test_warm_start_takes_a_randint_value_beyond_float_precision() -> None:
    # randint bounds may reach 2**63; the fit check compared float(v) with int(v), which for
    # an odd integer past 2**53 differ, so a trial of the same space was skipped as
    # "not an integer" (and so would every such trial of a seed-like parameter).
    from tuner_server.warm_start import misfit

    sp = parse_search_space({"seed": {"_type": "randint", "_value": [0, 2**62]}})
    assert misfit(sp, {"seed": 2**62 - 1}) is None
    assert misfit(sp, {"seed": 1263248596961149231}) is None
    assert misfit(sp, {"seed": 2**62}) is not None  # the upper bound stays excluded
    assert misfit(sp, {"seed": 1.5}) is not None
    assert misfit(sp, {"seed": 3.0}) is None


def test_batch_refuses_parameter_sets_mixed_with_plain_values() -> None:
    # An object option is a whole parameter set, a plain value fills the one parameter: mixed,
    # trial 0 got {"lr": 0.01} and trial 1 {"sets": 0.1}, with no warning.
    import pytest

    from tuner_server.tuners import TunerArgsError

    space = {"sets": {"_type": "choice", "_value": [{"lr": 0.01}, 0.1]}}
    with pytest.raises(TunerArgsError) as e:
        create_tuner("Batch", parse_search_space(space), {})
    assert "'sets' mixes parameter sets" in str(e.value) and "option 1: 0.1" in str(e.value), str(e.value)
    # Either kind alone is still a batch.
    assert create_tuner("Batch", parse_search_space({"sets": {"_type": "choice", "_value": [{"lr": 0.01}, {"lr": 0.1}]}}), {})
    assert create_tuner("Batch", parse_search_space({"lr": {"_type": "choice", "_value": [0.01, 0.1]}}), {})


def test_warm_start_off_grid_values_do_not_use_up_a_finite_space(tmp_path) -> None:
    # A source ran with q=1, the new space has q=2 (6 values). Its odd values passed the fit
    # check and counted as tried configurations: six imports and every tuner said the space
    # was used up, so the experiment ended DONE before running anything. Off-grid values
    # are now skipped with a reason; the on-grid one (4) still counts as tried.
    from tuner_server.engine import Engine, ExperimentConfig
    from tuner_server.store import Store
    from tuner_server.warm_start import ImportRequest, misfit

    space = {"q": {"_type": "quniform", "_value": [0, 10, 2]}}
    sp = parse_search_space(space)
    assert misfit(sp, {"q": 4}) is None and misfit(sp, {"q": 4.0}) is None
    assert "not on its grid" in (misfit(sp, {"q": 3}) or "")
    # The clipped bounds are values of the space, and float noise of a grid value is no misfit.
    clipped = parse_search_space({"q": {"_type": "quniform", "_value": [0.1, 0.95, 0.2]}})
    assert misfit(clipped, {"q": 0.95}) is None and misfit(clipped, {"q": 3 * 0.2}) is None
    assert misfit(parse_search_space({"q": {"_type": "qnormal", "_value": [0, 1, 0.5]}}), {"q": 0.75}) is not None

    engine = Engine(Store(tmp_path / "db.sqlite"))
    cfg = ExperimentConfig.model_validate({"searchSpace": json.dumps(space), "tuner": {"name": "TPE", "classArgs": {}},
                                           "optimizeMode": "maximize"})
    engine.register("new", "new", cfg)
    rows = [{"id": f"old-{v}", "parameters": {"q": v}, "metric": float(v), "ended": 1000.0 + v} for v in (1, 3, 4, 5, 7, 9)]
    r = engine.import_trials("new", ImportRequest.model_validate({"sources": [{"name": "old", "trials": rows}]}))
    assert r["imported"] == 1 and r["sources"][0]["skipped"] == 5, r
    assert "not on its grid" in r["sources"][0]["firstSkipReason"]
    issued = drain(engine, "new", "q", 1.0)
    assert sorted(issued) == [0, 2, 6, 8, 10], issued


def test_gp_and_metis_keep_a_huge_randint_in_range() -> None:
    # Their encoder turned a bin back into a value as (k + low).astype(int), in floats: a
    # low of 9223372036854770000 came back as ...769664, below the range, and went to the trial.
    lo, hi = 9223372036854770000, 9223372036854774784
    space = {"seed": {"_type": "randint", "_value": [lo, hi]}, "x": {"_type": "uniform", "_value": [0, 1]}}
    for tuner in ("GPTuner", "MetisTuner"):
        hist = _run(tuner, space, 20)
        assert len(hist) == 20
        for h in hist:
            assert type(h.parameters["seed"]) is int and lo <= h.parameters["seed"] < hi, (tuner, h.parameters)


def test_randint_bounds_are_compared_as_integers() -> None:
    # Compared as floats, 2**63 - 1 was 2**63 (refused as "not a 64-bit integer", which it
    # is) and [2**63 - 5, 2**63 - 1] had "lower < upper" false.
    import pytest

    from tuner_server.searchspace import SearchSpaceError

    top = 2**63 - 1
    assert parse_search_space({"s": {"_type": "randint", "_value": [0, top]}}).cardinality() == top
    space = {"s": {"_type": "randint", "_value": [top - 4, top]}}
    assert parse_search_space(space).cardinality() == 4
    for tuner in ("Random", "TPE", "GPTuner", "GridSearch", "Evolution"):
        got = sorted(h.parameters["s"] for h in _run(tuner, space, 10))
        assert got == [top - 4, top - 3, top - 2, top - 1], (tuner, got)
    for bad in ([0, 2**63], [top, top], [-(2**63) - 1, 0]):
        with pytest.raises(SearchSpaceError):
            parse_search_space({"s": {"_type": "randint", "_value": bad}})


def test_docs_table_of_search_spaces_matches_the_algorithms() -> None:
    """docs/algorithms.md's table of types and nested-choice support is what they accept."""
    import re
    from pathlib import Path

    from tuner_server.advisors import advisor_classes, create_advisor
    from tuner_server.tuners import TunerArgsError, tuner_classes

    ten = {"choice", "randint", "uniform", "quniform", "loguniform", "qloguniform", "normal", "qnormal", "lognormal", "qlognormal"}
    doc = (Path(__file__).resolve().parents[2] / "docs" / "algorithms.md").read_text()
    section = doc.split("## Which search spaces each algorithm takes", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("| `")]
    classes = {**{c.name: c for c in tuner_classes().values()}, **{c.name: c for c in advisor_classes().values()}}
    nested = parse_search_space({"o": {"_type": "choice", "_value": [
        {"_name": "a", "c": {"_type": "choice", "_value": [1, 2]}}, {"_name": "b"}]}})
    listed = set()
    for row in rows:
        names_cell, types_cell, nested_cell = (c.strip() for c in row.strip("|").split("|"))
        types = set(re.findall(r"`(\w+)`", types_cell)) | (ten if "all ten" in types_cell else set())
        for name in re.findall(r"`(\w+)`", names_cell):
            cls = classes[name]
            listed.add(name)
            assert set(cls.supported_types) == types, (name, sorted(cls.supported_types))
            make = create_advisor if name in {c.name for c in advisor_classes().values()} else create_tuner
            try:
                make(name, nested, {}, 0)
                takes_nested = "yes"
            except TunerArgsError:
                takes_nested = "no"
            assert nested_cell == takes_nested, name
    assert listed == set(classes), sorted(set(classes) - listed)


def test_warm_start_stores_imported_values_in_the_spaces_own_form(tmp_path) -> None:
    # Another tool wrote 0.1 * 3 = 0.30000000000000004 for a quniform q=0.1 (it fits: float
    # noise), 3.0 for a randint and 2.0 for the choice option 2. Kept as given, 0.3...04 was a
    # configuration apart from the space's own 0.3: TPE ran 0.3 again and then ended with
    # 0.1 never tried.
    from tuner_server.engine import Engine, ExperimentConfig
    from tuner_server.store import Store
    from tuner_server.warm_start import ImportRequest

    space = {"q": {"_type": "quniform", "_value": [0, 0.5, 0.1]}}
    engine = Engine(Store(tmp_path / "db.sqlite"))
    cfg = ExperimentConfig.model_validate({"searchSpace": json.dumps(space), "tuner": {"name": "TPE", "classArgs": {}},
                                           "optimizeMode": "maximize"})
    engine.register("new", "new", cfg)
    rows = [{"id": "a", "parameters": {"q": 0.1 * 3}, "metric": 1.0, "ended": 1.0},
            {"id": "b", "parameters": {"q": 0.4}, "metric": 2.0, "ended": 2.0}]
    assert engine.import_trials("new", ImportRequest.model_validate({"sources": [{"name": "old", "trials": rows}]}))["imported"] == 2
    assert [t.parameters for t in engine.get("new").history()] == [{"q": 0.3}, {"q": 0.4}]
    assert [t.parameters for t in Engine(Store(tmp_path / "db.sqlite")).get("new").history()] == [{"q": 0.3}, {"q": 0.4}]
    issued = drain(engine, "new", "q", 0.0)
    assert sorted(issued) == [0.0, 0.1, 0.2, 0.5], issued

    # Types too: a randint's 3.0 and a choice's 2.0 are stored as the space writes them.
    from tuner_server.warm_start import in_space_form

    sp = parse_search_space({"r": {"_type": "randint", "_value": [0, 5]}, "c": {"_type": "choice", "_value": [1, 2]},
                             "o": {"_type": "choice", "_value": [{"_name": "a", "x": {"_type": "quniform", "_value": [0, 4, 2]}}]}})
    got = in_space_form(sp, {"r": 3.0, "c": 2.0, "o": {"_name": "a", "x": 4.0}})
    assert got == {"r": 3, "c": 2, "o": {"_name": "a", "x": 4}}
    assert [type(got["r"]), type(got["c"]), type(got["o"]["x"])] == [int, int, int]


def test_spaces_whose_values_overflow_a_float_are_refused_at_parse() -> None:
    # Accepted before, then every tuner failed at a trial: numpy's uniform(-1e308, 1e308)
    # raised OverflowError at once, lognormal [700, 10] raised in exp() some trials in, and
    # normal [0, 1e308] handed out -inf, which the JSON answer cannot carry.
    import pytest

    from tuner_server.searchspace import SearchSpaceError

    for t, value in (("uniform", [-1e308, 1e308]), ("quniform", [-1e308, 1e308, 1e300]), ("normal", [0, 1e308]),
                     ("qnormal", [0, 1e307, 1]), ("lognormal", [700, 10]), ("qlognormal", [0, 400, 1])):
        with pytest.raises(SearchSpaceError) as e:
            parse_search_space({"p": {"_type": t, "_value": value}})
        assert e.value.path == "p" and "overflows a float" in str(e.value), (t, str(e.value))
    # Wide but representable spaces still parse and sample finite values.
    for t, value in (("uniform", [0, 1e308]), ("normal", [0, 1e300]), ("lognormal", [0, 30]), ("loguniform", [1e-300, 1e300])):
        hist = _run("Random", {"p": {"_type": t, "_value": value}}, 30)
        assert len(hist) == 30, t


def test_gp_and_metis_take_numeric_choices_beyond_a_float() -> None:
    # The encoder put a choice of numbers on a line by value: an option 10**400 raised
    # OverflowError once the model was built (trial 10, the experiment ended ERROR), and
    # options -1e308 .. 1e308 spread to inf, encoding 1e308 as NaN.
    from tuner_server.tuners.gp import Encoder

    for options in ([10**400, 1, 2], [-1e308, 0, 1e308]):
        space = {"c": {"_type": "choice", "_value": options}, "x": {"_type": "uniform", "_value": [0, 1]}}
        for tuner in ("GPTuner", "MetisTuner"):
            hist = _run(tuner, space, 16)
            assert len(hist) == 16 and all(h.parameters["c"] in options for h in hist), tuner
        sp = parse_search_space(space)
        enc = Encoder(sp, "GPTuner")
        X = enc.encode([sp.to_flat({"c": o, "x": 0.5}) for o in options])
        assert np.isfinite(X).all() and len({tuple(r) for r in X}) == 3, X


def test_two_nested_parameters_with_one_flat_key_are_refused() -> None:
    # Option "a/b/x" with sub-parameter y and option "a" > b > option "x" > y flattened to one
    # key, 'opt/a/b/x/y': the second replaced the first, so the 'a' branch's y (a choice of
    # [1, 2]) was handed 'p', 'q' and 'r', and the space counted 6 configurations, not 5.
    import pytest

    from tuner_server.searchspace import SearchSpaceError

    space = {"opt": {"_type": "choice", "_value": [
        {"_name": "a", "b": {"_type": "choice", "_value": [{"_name": "x", "y": {"_type": "choice", "_value": [1, 2]}}]}},
        {"_name": "a/b/x", "y": {"_type": "choice", "_value": ["p", "q", "r"]}}]}}
    with pytest.raises(SearchSpaceError) as e:
        parse_search_space(space)
    assert e.value.path == "opt/a/b/x/y" and "named twice" in str(e.value)
    # A '/' in an option name that collides with nothing is still fine.
    ok = {"opt": {"_type": "choice", "_value": [{"_name": "sgd/momentum", "m": {"_type": "choice", "_value": [0.9]}}, {"_name": "adam"}]}}
    assert parse_search_space(ok).cardinality() == 2
