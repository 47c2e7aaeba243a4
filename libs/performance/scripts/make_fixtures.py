"""Expected metric values from scikit-learn on deterministic data.

The data come from a 32-bit LCG with explicit modular arithmetic and are stored in the fixture
beside the expected values, so the TypeScript tests score exactly the inputs sklearn scored and
need no generator of their own. Run through make_fixtures.sh (it sets up the venv).
"""

import json
import math
import sys

import numpy as np
import sklearn
from sklearn import metrics as skm

CLASSIFICATION_CASES = [
    dict(name="balanced-continuous", seed=1, n=1000, positiveRate=0.5, separation=0.3, lo=0.02, hi=0.98, quantize=0, threshold=0.5),
    dict(name="imbalanced-ties", seed=2, n=1500, positiveRate=0.1, separation=0.2, lo=0.02, hi=0.98, quantize=20, threshold=0.5),
    dict(name="tiny", seed=3, n=7, positiveRate=0.5, separation=0.5, lo=0.02, hi=0.98, quantize=0, threshold=0.5),
    dict(name="no-predicted-positive", seed=4, n=50, positiveRate=0.3, separation=0.0, lo=0.01, hi=0.45, quantize=0, threshold=0.5),
    dict(name="perfect-separation", seed=5, n=100, positiveRate=0.4, separation=0.6, lo=0.01, hi=0.99, quantize=0, threshold=0.5),
    dict(name="low-threshold-coarse-ties", seed=6, n=400, positiveRate=0.35, separation=0.25, lo=0.05, hi=0.95, quantize=4, threshold=0.3),
]

REGRESSION_CASES = [
    dict(name="prices", seed=11, n=500, offset=100.0, scale=50.0, noise=10.0),
    dict(name="near-zero-targets", seed=12, n=300, offset=0.0, scale=2.0, noise=0.5),
    dict(name="single", seed=13, n=1, offset=5.0, scale=1.0, noise=1.0),
]


class Lcg32:
    def __init__(self, seed):
        self.state = seed % 4294967296

    def next(self):
        self.state = (1664525 * self.state + 1013904223) % 4294967296
        return self.state / 4294967296


def classification_data(c):
    rng = Lcg32(c["seed"])
    labels, scores = [], []
    for _ in range(c["n"]):
        y = 1 if rng.next() < c["positiveRate"] else 0
        u = rng.next()
        s = c["lo"] + (c["hi"] - c["lo"]) * (y * c["separation"] + u * (1 - c["separation"]))
        if c["quantize"] > 0:
            s = (math.floor(s * c["quantize"]) + 0.5) / c["quantize"]
        labels.append(y)
        scores.append(s)
    return labels, scores


def regression_data(c):
    rng = Lcg32(c["seed"])
    labels, preds = [], []
    for _ in range(c["n"]):
        y = c["offset"] + c["scale"] * (rng.next() - 0.5)
        p = y + c["noise"] * (rng.next() - 0.5)
        labels.append(y)
        preds.append(p)
    return labels, preds


def classification_expected(c, labels, scores):
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    pred = (s >= c["threshold"]).astype(np.int64)
    both = len(set(labels)) == 2
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y, s)) if both else None,
        "log_loss": float(skm.log_loss(y, s, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, s)),
    }


def regression_expected(labels, preds):
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(preds, dtype=np.float64)
    return {
        "mae": float(skm.mean_absolute_error(y, p)),
        "rmse": float(math.sqrt(skm.mean_squared_error(y, p))),
        "mape": float(skm.mean_absolute_percentage_error(y, p)),
    }


def main(out_path):
    out = {
        "generator": "libs/performance/scripts/make_fixtures.py",
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "classification": [],
        "regression": [],
    }
    for c in CLASSIFICATION_CASES:
        labels, scores = classification_data(c)
        out["classification"].append({"case": c, "labels": labels, "scores": scores, "expected": classification_expected(c, labels, scores)})
    for c in REGRESSION_CASES:
        labels, preds = regression_data(c)
        out["regression"].append({"case": c, "labels": labels, "predictions": preds, "expected": regression_expected(labels, preds)})
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {out_path} (sklearn {sklearn.__version__})")


if __name__ == "__main__":
    main(sys.argv[1])
