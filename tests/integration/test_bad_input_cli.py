"""`autotune run` as a real process, given the mistakes a new user makes on the command line
or in the trial command: one line saying what is wrong, the right exit code, no traceback."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from tests.integration.conftest import ADMIN, ServerProcess, manifest, run_autotune, write_manifest


def one_clear_line(stderr: str, expected: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert expected in stderr, stderr


def test_output_that_is_a_file_is_exit_2(tmp_path: Path) -> None:
    m = write_manifest(tmp_path / "e.yaml", manifest(max_trials=1))
    (tmp_path / "taken").write_text("not a directory")
    r = run_autotune(["run", str(m), "--output", str(tmp_path / "taken"), "--quiet"])
    assert r.returncode == 2
    one_clear_line(r.stderr, f"cannot create the output directory {tmp_path / 'taken' / 'toy'}: Not a directory")


def test_output_whose_lock_cannot_be_written_is_exit_2(tmp_path: Path) -> None:
    # Root ignores permissions, so a directory where the lock file goes stands in for a
    # read-only folder: opening it for writing fails the same way (an OSError).
    m = write_manifest(tmp_path / "e.yaml", manifest(max_trials=1))
    (tmp_path / "out" / "toy" / ".lock").mkdir(parents=True)
    r = run_autotune(["run", str(m), "--output", str(tmp_path / "out"), "--quiet"])
    assert r.returncode == 2
    one_clear_line(r.stderr, f"cannot write to the output directory {tmp_path / 'out' / 'toy'}: Is a directory")


def test_missing_workdir_names_the_flag(tmp_path: Path) -> None:
    m = write_manifest(tmp_path / "e.yaml", manifest(max_trials=1))
    r = run_autotune(["run", str(m), "--output", str(tmp_path / "out"), "--workdir", str(tmp_path / "nope"), "--quiet"])
    assert r.returncode == 2
    one_clear_line(r.stderr, f"--workdir {tmp_path / 'nope'} is not a directory on this machine")


def test_server_without_scheme_is_exit_2_at_once(tmp_path: Path) -> None:
    """'localhost:8080' used to be retried for two minutes, then a URLError traceback."""
    m = write_manifest(tmp_path / "e.yaml", manifest(max_trials=1))
    r = run_autotune(["run", str(m), "--output", str(tmp_path / "out"), "--server", "localhost:8080", "--quiet"],
                     env={"AUTOTUNE_ADMIN_TOKEN": ADMIN}, timeout=60)
    assert r.returncode == 2
    one_clear_line(r.stderr, "--server must be an http:// or https:// URL, got 'localhost:8080'")
    assert not (tmp_path / "out").exists()


def test_wrong_admin_token_is_not_blamed_on_an_earlier_experiment(tmp_path: Path, server: ServerProcess) -> None:
    m = write_manifest(tmp_path / "e.yaml", manifest(max_trials=1))
    r = run_autotune(["run", str(m), "--output", str(tmp_path / "out"), "--server", server.url, "--quiet"],
                     env={"AUTOTUNE_ADMIN_TOKEN": "not-the-admin-token-at-all"})
    assert r.returncode == 1
    one_clear_line(r.stderr, "tuner server answered 403: this operation needs the admin token")
    assert "earlier, different experiment" not in r.stderr


def test_summary_says_why_every_trial_failed(tmp_path: Path) -> None:
    """A misspelled interpreter fails every trial the same way: the summary says so instead
    of only 'best trial: none', and trials.csv keeps the reason of each."""
    m = write_manifest(tmp_path / "e.yaml", manifest(max_trials=2, command=["pythn3", "train.py"]))
    r = run_autotune(["run", str(m), "--output", str(tmp_path / "out"), "--quiet"])
    assert r.returncode == 1, r.stderr  # DONE (every trial ended) with no result: exit 1
    assert "Traceback" not in r.stdout + r.stderr
    out = tmp_path / "out" / "toy"
    assert (f"best trial: none (no trial succeeded; toy-0 could not start: [Errno 2] No such file or directory: "
            f"'pythn3', see {out}/trials/toy-0/trial.log)") in r.stdout
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [row["state"] for row in rows] == ["FAILED", "FAILED"]
    assert all("pythn3" in row["message"] for row in rows)


def test_summary_names_a_trial_that_never_reported(tmp_path: Path) -> None:
    m = write_manifest(tmp_path / "e.yaml", manifest(max_trials=1, command=[sys.executable, "-c", "print('trained')"]))
    r = run_autotune(["run", str(m), "--output", str(tmp_path / "out"), "--quiet"])
    assert r.returncode == 1, r.stderr  # no trial succeeded: no result
    assert "no trial succeeded; toy-0 exited 0 without reporting a final metric, see " in r.stdout


def test_output_holding_a_file_that_is_not_a_history_is_exit_2_and_kept(tmp_path: Path) -> None:
    m = write_manifest(tmp_path / "e.yaml", manifest(max_trials=1))
    (tmp_path / "out" / "toy").mkdir(parents=True)
    db = tmp_path / "out" / "toy" / "autotune.db"
    db.write_text("my notes, not a database\n" * 10)
    r = run_autotune(["run", str(m), "--output", str(tmp_path / "out"), "--quiet"])
    assert r.returncode == 2
    one_clear_line(r.stderr, f"{db} is not an AutoTune history (file is not a database); use another --output")
    assert db.read_text() == "my notes, not a database\n" * 10
    r = run_autotune(["ui", str(db.parent)], timeout=30)
    assert r.returncode == 2
    one_clear_line(r.stderr, f"{db} is not an AutoTune history")


def test_numpy_scalars_are_reported_as_numbers(tmp_path: Path) -> None:
    """np.float32 (a Keras/TF metric's .numpy()) is not a float: every such trial failed with
    'must be a finite number, got np.float32(0.5)'."""
    script = ("import autotune, numpy as np; autotune.get_next_parameter(); "
              "autotune.report_intermediate_result(np.float32(0.25)); "
              "autotune.report_final_result({'default': np.float32(0.5), 'n': np.int64(3)})")
    m = write_manifest(tmp_path / "e.yaml", manifest(max_trials=1, command=[sys.executable, "-c", script]))
    r = run_autotune(["run", str(m), "--output", str(tmp_path / "out"), "--quiet"])
    assert r.returncode == 0, r.stderr
    (row,) = csv.DictReader((tmp_path / "out" / "toy" / "trials.csv").open())
    assert (row["state"], row["value"], row["intermediate"]) == ("SUCCEEDED", "0.5", "[0.25]")
    assert '"n": 3' in row["metrics"]


def test_second_run_on_the_same_output_is_refused_and_the_first_loses_nothing(tmp_path: Path) -> None:
    """Two terminals, one --output: the second run took the first one's trial processes for
    leftovers of an interrupted run and killed them (signal 9), then crashed on the shared
    history with an IntegrityError traceback."""
    import subprocess
    import time

    from tests.integration.conftest import autotune_cmd

    # The trials wait for the test's go-ahead (at most 60 s), not a fixed 2 s: under load the
    # second run's start-up alone took longer than the first run's trials, so it found the
    # folder free and the refusal was never exercised.
    release = tmp_path / "release"
    m = write_manifest(tmp_path / "e.yaml", manifest(max_trials=2, command=[
        sys.executable, "-c", "import autotune, os, time; p = autotune.get_next_parameter(); t = time.monotonic()\n"
                              f"while not os.path.exists({str(release)!r}) and time.monotonic() - t < 60: time.sleep(0.05)\n"
                              "autotune.report_final_result(p['x'])"]))
    out = tmp_path / "out"
    first = subprocess.Popen(autotune_cmd() + ["run", str(m), "--output", str(out), "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "toy" / "trials" / "toy-0" / "pid").exists():  # the first run's trial is running
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    second = run_autotune(["run", str(m), "--output", str(out), "--quiet"])
    assert second.returncode == 2
    one_clear_line(second.stderr, f"another 'autotune run' is using {out / 'toy'}; wait for it to end or use another --output")
    assert first.poll() is None, "the first run ended before the second was refused"
    release.touch()
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    rows = list(csv.DictReader((out / "toy" / "trials.csv").open()))
    assert [r["state"] for r in rows] == ["SUCCEEDED", "SUCCEEDED"]
    # Once the first has ended the folder is free again (and the run continues, here: is done).
    assert run_autotune(["run", str(m), "--output", str(out), "--quiet"]).returncode == 0
