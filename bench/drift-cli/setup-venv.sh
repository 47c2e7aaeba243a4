#!/usr/bin/env bash
# Creates (once) the virtualenv with Evidently used by the side-by-side benchmark.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.cache/pyenv-bench"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import evidently" 2>/dev/null; then
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "numpy==2.4.6" "scipy==1.17.1" "pandas==2.3.3" "evidently==0.7.23"
fi
echo "$venv/bin/python"
