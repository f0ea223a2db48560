"""pareto.svg's axes when the objective values are (nearly) the same."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.dom.minidom

from autotune_operator.pareto_plot import nice_ticks

OBJECTIVES = [("accuracy", "maximize"), ("latency", "minimize")]
CLOSE = [(0.3, 0.1 + 0.2), (0.9, 0.9000000000000001), (1e17, 1e17 + 32), (5e-324, 1e-323)]


def test_values_a_float_step_apart_get_a_few_ticks_and_a_plot() -> None:
    # In a process whose memory is capped: before the fix the tick loop (v += step, with
    # 0.3 + step == 0.3) never ended and filled all of the machine's memory.
    code = textwrap.dedent("""
        import json, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from autotune_operator.pareto_plot import nice_ticks, pareto_svg
        close, objectives = json.loads(sys.argv[1])
        svg = pareto_svg([("a", 0.3, 2.0), ("b", 0.1 + 0.2, 1.0)], {"a", "b"}, objectives)
        print(json.dumps({"ticks": [nice_ticks(lo, hi) for lo, hi in close], "svg": svg}))
    """)
    r = subprocess.run([sys.executable, "-c", code, json.dumps([CLOSE, OBJECTIVES])], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    for (lo, hi), ticks in zip(CLOSE, out["ticks"]):
        assert 1 <= len(ticks) <= 11 and len(set(ticks)) == len(ticks), (lo, hi, ticks)
    assert out["ticks"][0] == [0.3]
    xml.dom.minidom.parseString(out["svg"])
    assert out["svg"].count("<circle") == 2 and "nan" not in out["svg"]


def test_ticks_of_ordinary_ranges_are_round_numbers() -> None:
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0.0, 0.6, n=6) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]  # 0.3, not 0.30000000000000004
    assert nice_ticks(-3.0, 1e-9) == [-3.0, -2.0, -1.0, 0.0]
    assert nice_ticks(2.0, 2.0) == [2.0] and nice_ticks(float("nan"), 1.0) == []
