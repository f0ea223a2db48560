"""A write that fails because the disk is full says so (a real file-size limit, in a child process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import resource, sqlite3, sys
from tuner_server.store import Store
store = Store(sys.argv[1])
store._tx("e", None, "small", {}, [])
# Python ignores SIGXFSZ: past the limit a write fails with EFBIG, as on a full disk. The
# payload is written to the WAL at COMMIT, whose failure SQLite has rolled back already.
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    store._tx("e", None, "big", {"blob": "x" * 2_000_000}, [])
except sqlite3.OperationalError as e:
    print("ERROR", e)
"""


def test_a_commit_that_fails_for_space_raises_its_own_error(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "a.db")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    # Before: the second ROLLBACK raised "cannot rollback - no transaction is active" instead.
    assert r.stdout.startswith("ERROR"), r.stdout
    assert "no transaction is active" not in r.stdout and ("full" in r.stdout or "I/O" in r.stdout), r.stdout
