#!/usr/bin/env bash
# Regenerates libs/performance/test/fixtures/sklearn.json: creates (or reuses) a venv under
# .cache/pyenv-perf with scikit-learn and numpy, then runs make_fixtures.py. Re-runnable.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="$root/.cache/pyenv-perf"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import sklearn, numpy' 2>/dev/null; then
  "$venv/bin/pip" install --quiet scikit-learn numpy
fi
"$venv/bin/python" "$here/make_fixtures.py" "$root/libs/performance/test/fixtures/sklearn.json"
