#!/usr/bin/env bash
# Creates (once) the trainer worker's Python environment and prints its interpreter path.
#
# The venv lives in <repo>/.cache/pyenv-trainer (ignored) when this script runs from a checkout
# (services/trainer/worker, or services/cli/dist/worker of the build), else in
# ${XDG_CACHE_HOME:-~/.cache}/driftline (an installed package); DRIFTLINE_TRAINER_VENV overrides
# both (the Docker image builds it at /opt/driftline/pyenv-trainer). It is reused when its stamp matches
# the pinned requirements and the machine's flavour (gpu/cpu), so repeated runs cost a few ms.
# Flavour: with a working `nvidia-smi` we install the full `xgboost` wheel (CUDA build); without
# one `xgboost-cpu` (same module, no CUDA libraries: a far smaller download). Override with
# DRIFTLINE_TRAINER_FLAVOUR=cpu|gpu. PYTHON picks the base interpreter (default python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/driftline"
dir="$here"
while [[ "$dir" != "/" ]]; do
  if [[ -f "$dir/pnpm-workspace.yaml" ]]; then cache="$dir/.cache"; break; fi
  dir="$(dirname "$dir")"
done
venv="${DRIFTLINE_TRAINER_VENV:-$cache/pyenv-trainer}"

flavour="${DRIFTLINE_TRAINER_FLAVOUR:-}"
if [[ -z "$flavour" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then flavour=gpu; else flavour=cpu; fi
fi
case "$flavour" in
  gpu) xgb="xgboost==3.2.0" ;;
  cpu) xgb="xgboost-cpu==3.2.0" ;;
  *) echo "DRIFTLINE_TRAINER_FLAVOUR must be cpu or gpu (got $flavour)" >&2; exit 2 ;;
esac
requirements=("numpy==2.4.6" "pyarrow==26.0.1" "$xgb")
stamp="$flavour ${requirements[*]}"

if [[ -x "$venv/bin/python" && -f "$venv/.driftline-stamp" && "$(cat "$venv/.driftline-stamp")" == "$stamp" ]]; then
  echo "$venv/bin/python"
  exit 0
fi

# Serialise concurrent set-ups (two test files, a test and the demo) on one lock.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [[ -x "$venv/bin/python" && -f "$venv/.driftline-stamp" && "$(cat "$venv/.driftline-stamp")" == "$stamp" ]]; then
  echo "$venv/bin/python"
  exit 0
fi
echo "trainer worker: creating $venv ($stamp)" >&2
rm -rf "$venv"
"${PYTHON:-python3}" -m venv "$venv"
# Both wheels provide the `xgboost` module: never keep the other flavour around.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}" >&2
"$venv/bin/python" -c 'import numpy, pyarrow, xgboost' >&2
printf '%s' "$stamp" >"$venv/.driftline-stamp"
echo "$venv/bin/python"
