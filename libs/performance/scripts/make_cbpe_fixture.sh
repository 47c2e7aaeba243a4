#!/usr/bin/env bash
# Regenerates libs/performance/test/fixtures/nannyml-cbpe.json (or, given `saturated`,
# nannyml-cbpe-saturated.json): creates (or reuses) a venv under .cache/pyenv-nannyml with pinned
# NannyML and its numeric stack, then runs make_cbpe_fixture.py (make_cbpe_saturated_fixture.py).
# The pins are the set checked to import and run together (nannyml 0.13.1 imports statsmodels
# without declaring it, and does not run on pandas 3). Re-runnable.
set -euo pipefail
case "${1:-}" in
  '') name=cbpe ;;
  saturated) name=cbpe_saturated ;;
  *) echo "usage: $0 [saturated]" >&2; exit 2 ;;
esac
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
venv="$root/.cache/pyenv-nannyml"
pins=(nannyml==0.13.1 pandas==2.2.3 numpy==2.2.6 scikit-learn==1.6.1 scipy==1.14.1 statsmodels==0.14.4)
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import nannyml, statsmodels; assert nannyml.__version__ == "0.13.1"' 2>/dev/null; then
  "$venv/bin/pip" install --quiet "${pins[@]}"
fi
# NML_DISABLE_USAGE_LOGGING: NannyML's usage telemetry (this machine reaches no such host).
NML_DISABLE_USAGE_LOGGING=1 "$venv/bin/python" "$here/make_${name}_fixture.py" \
  "$root/libs/performance/test/fixtures/nannyml-${name//_/-}.json"
