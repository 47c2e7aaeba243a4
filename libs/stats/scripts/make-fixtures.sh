#!/usr/bin/env bash
# Regenerates libs/stats/test/fixtures/expected.json with scipy and Evidently.
# Creates (once) a virtualenv under .cache/pyenv-stats at the repository root.
# Versions are pinned so fixtures are reproducible; Evidently 0.7.x does not import with pandas 3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="$root/.cache/pyenv-stats"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "numpy==2.4.6" "scipy==1.17.1" "pandas==2.3.3" "evidently==0.7.23"
exec "$venv/bin/python" "$here/make_fixtures.py" "$@"
