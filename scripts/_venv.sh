# Sourced by the other scripts: makes .venv (Python >= 3.11) with AutoTune and its test
# extras installed, and re-installs only when pyproject.toml changed since the last time.
set -euo pipefail
# The repository's operator/ folder must never shadow the standard library's `operator`
# module: never put the current directory on sys.path (Python 3.11+).
export PYTHONSAFEPATH=1
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${AUTOTUNE_VENV:-$root/.venv}"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "AutoTune needs Python 3.11 or newer; $py is $("$py" --version 2>&1)" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating virtualenv $venv" >&2
    "$py" -m venv "$venv"
fi
stamp="$venv/.autotune-installed"
want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing AutoTune and its test dependencies into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet -e "$root[test]" >&2
    echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
