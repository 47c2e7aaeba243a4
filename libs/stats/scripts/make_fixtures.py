#!/usr/bin/env python3
"""Reference values for @driftline/stats, computed with scipy and Evidently.

Regenerates libs/stats/test/fixtures/expected.json. The datasets are not stored: this script and
test/generate.ts implement the same deterministic generator (exact uint32 arithmetic and only
correctly rounded float operations), so both sides rebuild identical samples from the parameters
recorded here. A checksum per sample lets the TypeScript tests prove that.

Run through scripts/make-fixtures.sh, which prepares the virtualenv.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
from scipy import stats
from scipy.spatial import distance

import evidently
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.calculations.stattests.psi import _psi, psi_stat_test
from evidently.metrics import ValueDrift
from evidently.legacy.core import ColumnType

M32 = 0xFFFFFFFF
OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "expected.json"
JS_BINS = 10  # quantile bins used for Jensen-Shannon and quantile PSI
PSI_EPSILON = 1e-4
OTHER = "__other__"


# ---- generator: mirror of test/generate.ts ---------------------------------------------------

class Rng:
    __slots__ = ("state",)

    def __init__(self, seed: int) -> None:
        self.state = seed & M32

    def next_u32(self) -> int:
        self.state = (self.state + 0x6D2B79F5) & M32
        t = self.state
        t = ((t ^ (t >> 15)) * (t | 1)) & M32
        s = (t + (((t ^ (t >> 7)) * (t | 61)) & M32)) & M32
        t = (t ^ s) & M32
        return (t ^ (t >> 14)) & M32

    def uniform(self) -> float:
        return self.next_u32() / 4294967296

    def normal(self) -> float:
        s = 0.0
        for _ in range(12):
            s += self.uniform()
        return s - 6


def generate_numeric(spec: dict) -> list[float]:
    rng = Rng(spec["seed"])
    n = spec["n"]
    dist = spec["dist"]
    out: list[float] = []
    push = out.append
    if dist == "normal":
        mean, sd = spec["mean"], spec["sd"]
        for _ in range(n):
            push(mean + sd * rng.normal())
    elif dist == "ratio":
        loc, scale = spec["loc"], spec["scale"]
        for _ in range(n):
            z1 = rng.normal()
            z2 = rng.normal()
            while z2 == 0:
                z2 = rng.normal()
            push(loc + scale * (z1 / z2))
    elif dist == "bimodal":
        for _ in range(n):
            u = rng.uniform()
            z = rng.normal()
            push(spec["mean1"] + spec["sd1"] * z if u < spec["weight1"] else spec["mean2"] + spec["sd2"] * z)
    elif dist == "discrete":
        k, offset = spec["k"], spec["offset"]
        for _ in range(n):
            push(float(math.floor(rng.uniform() * k) + offset))
    elif dist == "rounded":
        mean, sd, scale = spec["mean"], spec["sd"], spec["scale"]
        for _ in range(n):
            push(math.floor((mean + sd * rng.normal()) * scale) / scale)
    else:
        raise ValueError(dist)
    return out


def generate_categorical(spec: dict) -> list[str]:
    rng = Rng(spec["seed"])
    weights = spec["weights"]
    cats = spec["categories"]
    total = sum(weights)
    out = []
    for _ in range(spec["n"]):
        pick = math.floor(rng.uniform() * total)
        acc = 0
        k = 0
        while k < len(weights) - 1 and pick >= acc + weights[k]:
            acc += weights[k]
            k += 1
        out.append(cats[k])
    return out


def sequential_sum(values: list[float]) -> float:
    s = 0.0
    for v in values:
        s += v
    return s


# ---- the documented quantile binning (mirror of src/quantile.ts) -----------------------------

def quantile_of_sorted(s: list[float], num: int, den: int) -> float:
    n = len(s)
    h = ((n - 1) * num) / den
    lo = math.floor(h)
    a = s[lo]
    frac = h - lo
    if frac == 0 or lo + 1 >= n:
        return a
    b = s[lo + 1]
    v = a + frac * (b - a)
    return a if v < a else b if v > b else v


def quantile_edges(s: list[float], bins: int) -> list[float]:
    out: list[float] = []
    for k in range(1, bins):
        q = quantile_of_sorted(s, k, bins)
        if not out or q > out[-1]:
            out.append(q)
    if len(out) == 1 and math.isfinite(math.nextafter(out[0], -math.inf)):
        # As quantileEdges: one edge c becomes bins below c, at c and above c.
        out.insert(0, math.nextafter(out[0], -math.inf))
    return out


def right_closed_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    # bin = number of edges strictly below x: bins (e[i-1], e[i]]
    idx = np.searchsorted(np.asarray(edges, dtype=float), values, side="left")
    return np.bincount(idx, minlength=len(edges) + 1).astype(float)


def psi_with_epsilon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    r = ref_counts / ref_counts.sum()
    c = cur_counts / cur_counts.sum()
    r = np.where(r == 0, PSI_EPSILON, r)
    c = np.where(c == 0, PSI_EPSILON, c)
    return float(np.sum((c - r) * np.log(c / r)))


# ---- datasets ----------------------------------------------------------------------------------

def normal(n, seed, mean=0.0, sd=1.0):
    return {"dist": "normal", "n": n, "seed": seed, "mean": mean, "sd": sd}


def ratio(n, seed, loc=0.0, scale=1.0):
    return {"dist": "ratio", "n": n, "seed": seed, "loc": loc, "scale": scale}


def bimodal(n, seed, mean1, sd1, mean2, sd2, weight1):
    return {"dist": "bimodal", "n": n, "seed": seed, "mean1": mean1, "sd1": sd1, "mean2": mean2, "sd2": sd2,
            "weight1": weight1}


def discrete(n, seed, k, offset=0):
    return {"dist": "discrete", "n": n, "seed": seed, "k": k, "offset": offset}


def rounded(n, seed, mean, sd, scale):
    return {"dist": "rounded", "n": n, "seed": seed, "mean": mean, "sd": sd, "scale": scale}


def categorical(n, seed, categories, weights):
    return {"dist": "categorical", "n": n, "seed": seed, "categories": categories, "weights": weights}


CATS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]

DATASETS = [
    ("normal_30_vs_30", normal(30, 101), normal(30, 102)),
    ("shifted_30_vs_45", normal(30, 103), normal(45, 104, 0.8)),
    ("normal_100_vs_80", normal(100, 105), normal(80, 106)),
    ("shifted_500_vs_400", normal(500, 107), normal(400, 108, 0.3)),
    ("scaled_1000_vs_1000", normal(1000, 109), normal(1000, 110, 0.0, 1.5)),
    ("strong_shift_1000_vs_1000", normal(1000, 111), normal(1000, 112, 1.0)),
    ("strong_shift_800_vs_1200", normal(800, 113), normal(1200, 114, 0.6)),
    ("heavy_tail_2000_vs_1500", ratio(2000, 115), ratio(1500, 116, 0.5)),
    ("bimodal_5000_vs_3000", normal(5000, 117), bimodal(3000, 118, -1.5, 0.6, 1.5, 0.6, 0.5)),
    ("scaled_5000_vs_4000", normal(5000, 119), normal(4000, 120, 0.0, 0.8)),
    ("discrete_1000_vs_800", discrete(1000, 121, 10), discrete(800, 122, 12)),
    ("ties_3000_vs_2000", rounded(3000, 123, 0.0, 1.0, 10), rounded(2000, 124, 0.1, 1.0, 10)),
    ("normal_10000_vs_10000", normal(10000, 125), normal(10000, 126)),
    ("shifted_10000_vs_7000", normal(10000, 127), normal(7000, 128, 0.05)),
    ("small_vs_large_30_vs_20000", normal(30, 129, 0.5), normal(20000, 130)),
    ("small_vs_large_60_vs_15000", normal(60, 131), normal(15000, 132)),
    ("normal_20000_vs_15000", normal(20000, 133), normal(15000, 134)),
    ("shifted_50000_vs_50000", normal(50000, 135), normal(50000, 136, 0.03)),
    ("heavy_tail_100000_vs_80000", ratio(100000, 137), ratio(80000, 138, 0.0, 1.1)),
    ("bimodal_200000_vs_100000", bimodal(200000, 139, -1.0, 0.5, 1.0, 0.5, 0.5),
     bimodal(100000, 140, -1.0, 0.5, 1.0, 0.5, 0.45)),
    ("discrete_50000_vs_40000", discrete(50000, 141, 15), discrete(40000, 142, 15, 1)),
    ("ties_100000_vs_100000", rounded(100000, 143, 0.0, 1.0, 100), rounded(100000, 144, 0.0, 1.0, 100)),
    ("shifted_1000000_vs_1000000", normal(1000000, 145), normal(1000000, 146, 0.005)),
    ("categorical_1000_vs_800", categorical(1000, 147, CATS[:4], [4, 3, 2, 1]),
     categorical(800, 148, CATS[:4], [4, 3, 2, 1])),
    ("categorical_new_5000_vs_4000", categorical(5000, 149, CATS[:4], [5, 3, 1, 1]),
     categorical(4000, 150, CATS, [5, 3, 1, 1, 1, 1])),
    ("categorical_100000_vs_100000", categorical(100000, 151, CATS, [10, 8, 6, 4, 2, 1]),
     categorical(100000, 152, CATS, [9, 8, 6, 5, 2, 1])),
]


def checksum(values) -> dict:
    if isinstance(values[0], str):
        return {"first": values[0], "last": values[-1], "n": len(values)}
    return {"first": values[0], "last": values[-1], "sum": sequential_sum(values), "n": len(values)}


def evidently_report_psi(ref: list, cur: list, categorical: bool) -> float:
    """PSI as Evidently's own Report (ValueDrift, method='psi') computes it: proves the stat-test call
    used for every dataset is what a user of Evidently would see."""
    dd = DataDefinition(categorical_columns=["x"]) if categorical else DataDefinition(numerical_columns=["x"])
    snap = Report([ValueDrift(column="x", method="psi")]).run(
        Dataset.from_pandas(pd.DataFrame({"x": cur}), data_definition=dd),
        Dataset.from_pandas(pd.DataFrame({"x": ref}), data_definition=dd),
    )
    return float(snap.dict()["metrics"][0]["value"])


# Datasets small enough that running a full Evidently Report on them is quick.
REPORT_CHECK = {"shifted_500_vs_400", "discrete_1000_vs_800", "ties_3000_vs_2000", "categorical_new_5000_vs_4000"}


def ks_expected(ref: np.ndarray, cur: np.ndarray) -> dict:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = stats.ks_2samp(ref, cur, alternative="two-sided", method="auto")
    fell_back = any("Switching to method=asymp" in str(w.message) for w in caught)
    method = "exact" if max(len(ref), len(cur)) <= 10000 and not fell_back else "asymp"
    return {"statistic": float(res.statistic), "pvalue": float(res.pvalue), "method": method}


def numeric_expected(ref_list: list[float], cur_list: list[float]) -> dict:
    ref = np.asarray(ref_list, dtype=float)
    cur = np.asarray(cur_list, dtype=float)
    edges = quantile_edges(sorted(ref_list), JS_BINS)
    rc = right_closed_counts(ref, edges)
    cc = right_closed_counts(cur, edges)
    rs, cs = pd.Series(ref), pd.Series(cur)
    evid = psi_stat_test(rs, cs, ColumnType.Numerical, 0.1)
    evid_10, _ = _psi(rs, cs, ColumnType.Numerical, 0.1, n_bins=JS_BINS)
    return {
        "ks": ks_expected(ref, cur),
        "wasserstein": float(stats.wasserstein_distance(ref, cur)),
        "jensenshannon": float(distance.jensenshannon(rc, cc)),
        "quantile_bins": {"bins": JS_BINS, "edges": len(edges)},
        "psi_quantile": psi_with_epsilon(rc, cc),
        "evidently_psi": float(evid.drift_score),
        "evidently_psi_n_bins_10": float(evid_10),
        "evidently_binning": "sturges" if rs.nunique() > 20 else "per-value",
    }


def categorical_expected(ref_list: list[str], cur_list: list[str]) -> dict:
    labels = sorted(set(ref_list))
    index = {k: i for i, k in enumerate(labels)}
    rc = np.zeros(len(labels) + 1)
    cc = np.zeros(len(labels) + 1)
    for v in ref_list:
        rc[index[v]] += 1
    for v in cur_list:
        cc[index.get(v, len(labels))] += 1
    table = np.vstack([rc, cc])
    table = table[:, table.sum(axis=0) > 0]
    chi = stats.chi2_contingency(table, correction=False)
    out = {
        "chi2": {"statistic": float(chi.statistic), "pvalue": float(chi.pvalue), "dof": int(chi.dof)},
        "jensenshannon": float(distance.jensenshannon(rc, cc)),
        "psi_quantile": psi_with_epsilon(rc, cc),
        "evidently_psi": float(psi_stat_test(pd.Series(ref_list), pd.Series(cur_list), ColumnType.Categorical,
                                             0.1).drift_score),
        "labels": labels + [OTHER],
    }
    if cc[-1] == 0:
        gof = stats.chisquare(cc[:-1], rc[:-1] / rc[:-1].sum() * cc[:-1].sum())
        out["chi2_goodness_of_fit"] = {"statistic": float(gof.statistic), "pvalue": float(gof.pvalue)}
    return out


def kstwo_table() -> list[dict]:
    """kstwo.sf over a grid that reaches every branch of scipy's kolmogn (small/large n, tails)."""
    rows = []
    for n in [1, 2, 3, 5, 10, 25, 60, 100, 140, 141, 300, 1000, 5000, 20000, 100000, 100001, 400000,
              1000000, 1000001, 3000000]:
        ds = [0.4 / n, 0.8 / n, 1.5 / n, 0.3, 0.55, 0.9, 1 - 0.5 / n]
        ds += [c / math.sqrt(n) for c in (0.1, 0.25, 0.5, 0.8, 1.0, 1.3, 1.6, 2.0, 2.5, 3.5, 6.0)]
        for d in sorted(set(ds)):
            if 0 < d < 1:
                rows.append({"n": n, "d": d, "sf": float(stats.kstwo.sf(d, n))})
    return rows


def chi2_table() -> list[dict]:
    rows = []
    for df in [1, 2, 3, 4, 5, 7, 10, 30, 100, 1000, 10000]:
        for mult in [0.001, 0.1, 0.5, 0.9, 1.0, 1.1, 2.0, 5.0, 20.0]:
            x = mult * df
            rows.append({"df": df, "x": x, "sf": float(stats.chi2.sf(x, df))})
    return rows


def main() -> None:
    started = time.time()
    results = []
    for name, ref_spec, cur_spec in DATASETS:
        t0 = time.time()
        if ref_spec["dist"] == "categorical":
            ref, cur = generate_categorical(ref_spec), generate_categorical(cur_spec)
            expected = categorical_expected(ref, cur)
            kind = "categorical"
            if name in REPORT_CHECK:
                expected["evidently_report_psi"] = evidently_report_psi(ref, cur, True)
        else:
            ref, cur = generate_numeric(ref_spec), generate_numeric(cur_spec)
            expected = numeric_expected(ref, cur)
            kind = "numeric"
            if name in REPORT_CHECK:
                expected["evidently_report_psi"] = evidently_report_psi(ref, cur, False)
        results.append({
            "name": name,
            "kind": kind,
            "reference": ref_spec,
            "current": cur_spec,
            "checksums": {"reference": checksum(ref), "current": checksum(cur)},
            "expected": expected,
        })
        print(f"{name}: {time.time() - t0:.1f}s", file=sys.stderr)
    doc = {
        "generated_by": "libs/stats/scripts/make_fixtures.py",
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "pandas": pd.__version__,
            "evidently": evidently.__version__,
        },
        "conventions": {
            "ks": "scipy.stats.ks_2samp(ref, cur, alternative='two-sided', method='auto')",
            "wasserstein": "scipy.stats.wasserstein_distance(ref, cur)",
            "jensenshannon": "scipy.spatial.distance.jensenshannon on right-closed bins at reference quantiles "
                             "k/10 (type 7, deduplicated; categorical: reference categories + other), natural log",
            "psi_quantile": "same bins, zero shares replaced by 1e-4, sum (c-r)ln(c/r)",
            "evidently_psi": "evidently.legacy psi_stat_test(ref, cur, feature_type, 0.1).drift_score "
                             "(evidently_report_psi: Report([ValueDrift(method='psi')]) on the same data)",
            "chi2": "scipy.stats.chi2_contingency([ref; cur], correction=False) over reference categories + other",
        },
        "datasets": results,
        "kstwo_sf": kstwo_table(),
        "chi2_sf": chi2_table(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    print(f"wrote {OUT} ({len(results)} datasets) in {time.time() - started:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
