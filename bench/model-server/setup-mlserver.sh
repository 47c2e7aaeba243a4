#!/usr/bin/env bash
# Creates (once) <repo>/.cache/pyenv-mlserver with MLServer 1.7.1 and its XGBoost runtime, for the
# side-by-side model-server benchmark, and prints its interpreter path.
#
# It is reused when its stamp matches the pinned requirements, so repeated runs cost a few ms; a
# flock serialises concurrent set-ups. mlserver-xgboost asks for the `xgboost` distribution, whose
# wheel carries CUDA libraries (hundreds of MB); `xgboost-cpu` provides the same module without them,
# so the runtime is installed with --no-deps next to xgboost-cpu and its other requirement
# (scikit-learn, for xgboost.sklearn). xgboost 3.2.0 is the trainer's version, which wrote the
# synthetic model's format. PYTHON picks the base interpreter (default python3; MLServer 1.7.1 needs
# 3.9 to 3.12). Every other package is pinned by mlserver-constraints.txt (MLServer's own requirements
# are open ranges, and later releases break it: see the uvloop note there).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.cache/pyenv-mlserver"
here="$root/bench/model-server"
requirements=("mlserver==1.7.1" "xgboost-cpu==3.2.0" "scikit-learn==1.7.2")
runtime="mlserver-xgboost==1.7.1"
stamp="${requirements[*]} $runtime $(sha256sum "$here/mlserver-constraints.txt" | cut -c1-16)"

ready() { [[ -x "$venv/bin/python" && -f "$venv/.driftline-stamp" && "$(cat "$venv/.driftline-stamp")" == "$stamp" ]]; }
if ready; then
  echo "$venv/bin/python"
  exit 0
fi

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if ready; then
  echo "$venv/bin/python"
  exit 0
fi
echo "mlserver bench: creating $venv ($stamp)" >&2
rm -rf "$venv"
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c "$here/mlserver-constraints.txt" "${requirements[@]}" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$runtime" >&2
"$venv/bin/python" -c 'import mlserver, mlserver_xgboost, xgboost, sklearn' >&2
printf '%s' "$stamp" >"$venv/.driftline-stamp"
echo "$venv/bin/python"
