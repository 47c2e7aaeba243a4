#!/usr/bin/env bash
# Regenerates libs/scoring/test/fixtures with XGBoost itself, in the trainer worker's Python
# environment (services/trainer/worker/setup-venv.sh creates .cache/pyenv-trainer once: pinned
# numpy, pyarrow and xgboost — the same build that trains the models the model-server scores).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
python="$(bash "$root/services/trainer/worker/setup-venv.sh" | tail -n 1)"
exec "$python" "$here/make_fixtures.py" --out "$here/../test/fixtures" --worker "$root/services/trainer/worker/train.py" "$@"
