"""The operator validates specs with every tuner/assessor/advisor registry imported, but
never runs their numerics: scipy must stay out of its process (it is ~60 MiB of idle RSS,
see bench/operator_memory.py)."""

from __future__ import annotations

import subprocess
import sys


def test_operator_does_not_import_scipy():
    code = (
        "import sys\n"
        "import autotune_operator.runtime, autotune_operator.spec, autotune_operator.kopf_handlers\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'sklearn'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
