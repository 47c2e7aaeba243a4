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
# `--print-venv` prints the venv's folder and exits, creating nothing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# The venv's folder. HOME is read only when neither a checkout, DRIFTLINE_TRAINER_VENV nor
# XDG_CACHE_HOME says where: under `set -u` an unset HOME (a bare service environment) killed the
# script before it looked for the checkout.
venv_dir() {
  if [[ -n "${DRIFTLINE_TRAINER_VENV:-}" ]]; then echo "$DRIFTLINE_TRAINER_VENV"; return; fi
  local dir="$here"
  while [[ "$dir" != "/" ]]; do
    if [[ -f "$dir/pnpm-workspace.yaml" ]]; then echo "$dir/.cache/pyenv-trainer"; return; fi
    dir="$(dirname "$dir")"
  done
  if [[ -z "${XDG_CACHE_HOME:-}" && -z "${HOME:-}" ]]; then
    echo "trainer worker: nowhere to create the venv: set DRIFTLINE_TRAINER_VENV (or HOME or XDG_CACHE_HOME)" >&2
    return 2
  fi
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/driftline/pyenv-trainer"
}
venv="$(venv_dir)"
if [[ "${1:-}" == "--print-venv" ]]; then echo "$venv"; exit 0; fi

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

# The base interpreter is checked before anything is locked, removed or created: a missing one (or
# Debian's python3 without python3-venv, whose `-m venv` fails after a long set-up) is one line and
# exit 78 (a configuration error), in milliseconds.
python="${PYTHON:-python3}"
advice="install python3 and python3-venv (Debian/Ubuntu: apt-get install python3 python3-venv), point PYTHON at a Python 3, or set DRIFTLINE_TRAINER_PYTHON to a Python with the worker's packages"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "trainer worker: PYTHON: no Python interpreter \"$python\": $advice" >&2
  exit 78
fi
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "trainer worker: PYTHON: \"$python\" cannot create a venv (no venv/ensurepip module): $advice" >&2
  exit 78
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
"$python" -m venv "$venv"
# Both wheels provide the `xgboost` module: never keep the other flavour around.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}" >&2
"$venv/bin/python" -c 'import numpy, pyarrow, xgboost' >&2
printf '%s' "$stamp" >"$venv/.driftline-stamp"
echo "$venv/bin/python"
