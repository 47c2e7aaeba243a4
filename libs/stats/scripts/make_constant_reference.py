"""Writes libs/stats/test/fixtures/constant-reference.json: Evidently's PSI (psi_stat_test, numerical)
of a constant reference against windows below, at and above the constant (found by a review: with
one quantile edge c, (−∞, c] took the whole reference and a shift below it gave PSI 0). Samples are
rebuilt by the test from the parameters. Run once, committed:
    .cache/pyenv-bench/bin/python libs/stats/scripts/make_constant_reference.py
"""
import json
from pathlib import Path

import pandas as pd
from evidently import __version__
from evidently.legacy.calculations.stattests.psi import psi_stat_test
from evidently.legacy.core import ColumnType

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "constant-reference.json"
cases = []
for constant, n_ref in [(0.0, 1000), (2.5, 300)]:
    for name, start, step, n_cur in [("below", -1000.0, -1.0, 500), ("above", 1000.0, 1.0, 500),
                                     ("just_below", -0.5, 0.0, 40), ("same", 0.0, 0.0, 200)]:
        ref = [constant] * n_ref
        cur = [constant + start + step * i for i in range(n_cur)]
        r = psi_stat_test(pd.Series(ref), pd.Series(cur), ColumnType.Numerical, 0.1)
        cases.append({"constant": constant, "n_ref": n_ref, "window": name, "start": start, "step": step,
                      "n_cur": n_cur, "evidently_psi": float(r.drift_score), "evidently_drifted": bool(r.drifted)})
OUT.write_text(json.dumps({"evidently": __version__, "threshold": 0.1, "cases": cases}, indent=1) + "\n")
print(json.dumps(cases, indent=0))
