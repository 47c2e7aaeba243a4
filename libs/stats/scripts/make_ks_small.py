"""Writes libs/stats/test/fixtures/ks-small.json: scipy's ks_2samp on small samples where the
asymptotic p-value falls below 0.05 while the exact one does not (found by a review: the streaming KS
took the asymptotic p and so called drift that scipy's method='auto' does not). Samples are grids,
rebuilt by the test from the parameters: reference (i + 0.5) / n1, current (j + 0.5) / n2 · scale.
Run once, committed (scipy 1.17.1, as make-fixtures.sh pins):
    .cache/pyenv-bench/bin/python libs/stats/scripts/make_ks_small.py
"""
import json
from pathlib import Path

import numpy as np
import scipy
from scipy import stats

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "ks-small.json"
cases = []
for n1, n2 in [(1000, 10), (1000, 30), (200, 20), (50, 50), (400, 7)]:
    ref = (np.arange(n1) + 0.5) / n1
    straddled = False
    for scale in np.round(np.arange(0.30, 1.0, 0.01), 2):
        cur = (np.arange(n2) + 0.5) / n2 * scale
        auto = stats.ks_2samp(ref, cur, method="auto")
        asymp = stats.ks_2samp(ref, cur, method="asymp")
        straddles = bool(asymp.pvalue < 0.05 <= auto.pvalue)
        # Every case where the two methods disagree at 0.05 (the first per size), and a few others.
        if (straddles and not straddled) or scale in (0.5, 0.8):
            straddled = straddled or straddles
            cases.append({"n1": n1, "n2": n2, "scale": float(scale), "statistic": float(auto.statistic),
                          "auto_p": float(auto.pvalue), "asymp_p": float(asymp.pvalue), "straddles_0_05": straddles})
OUT.write_text(json.dumps({"scipy": scipy.__version__, "cases": cases}, indent=1) + "\n")
print(len(cases), "cases")
