"""Trains small XGBoost models and records XGBoost's own predictions for @driftline/scoring's tests.

Usage (from the repository root): bash libs/scoring/scripts/make-fixtures.sh

Writes, per case, into test/fixtures/:
  <case>.model.json.gz  the model exactly as Booster.save_model('m.json') writes it
  <case>.cases.json.gz  {"xgboost", "objective", "rows" (row-major, null = NaN), "margin", "predict"}
                        - predictions of Booster.predict on the same rows (float32 values as doubles)
  trainer.*             a model trained by the trainer's own worker (services/trainer/worker/train.py)
                        on an Arrow file shaped like services/trainer/src/dataset.ts writes it, with
                        its meta.json and the raw feature records, and the scores the worker wrote.

Deterministic: fixed seeds, single thread (nthread=1), so reruns give the same files.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import xgboost as xgb


def gz_write(path: str, text: str) -> None:
    # mtime=0: identical bytes on every run.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as f:
        f.write(text.encode("utf-8"))


def nullify(a: np.ndarray) -> list:
    return [[None if np.isnan(v) else float(v) for v in row] for row in a]


def threshold_rows(booster: xgb.Booster, n_features: int, rng: np.random.Generator, n: int) -> np.ndarray:
    """Rows whose values sit exactly on split conditions or one float64 step around them: they check
    that the scorer compares in float32 like XGBoost (a double just below a float32 threshold rounds
    onto it and goes right)."""
    model = json.loads(booster.save_raw("json"))
    on: dict[int, list[float]] = {}
    for tree in model["learner"]["gradient_booster"]["model"]["trees"]:
        for nid, left in enumerate(tree["left_children"]):
            if left != -1 and tree["split_type"][nid] == 0:
                on.setdefault(tree["split_indices"][nid], []).append(tree["split_conditions"][nid])
    rows = rng.normal(size=(n, n_features))
    for i in range(n):
        for f, values in on.items():
            t = np.float64(values[rng.integers(len(values))])
            rows[i, f] = rng.choice([t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf),
                                     np.float64(np.nextafter(np.float32(t), np.float32(-np.inf)))])
    return rows


def save_case(out: str, name: str, booster: xgb.Booster, rows: np.ndarray, note: str,
              categorical: list[int] | None = None) -> None:
    path = os.path.join(tempfile.mkdtemp(), "m.json")
    booster.save_model(path)
    with open(path, encoding="utf-8") as f:
        model_text = f.read()
    kwargs = {}
    if categorical:
        types = ["c" if i in categorical else "q" for i in range(rows.shape[1])]
        kwargs = {"feature_types": types, "enable_categorical": True}
    d = xgb.DMatrix(rows, missing=np.nan, feature_names=booster.feature_names, **kwargs)
    pred = booster.predict(d)
    margin = booster.predict(d, output_margin=True)
    obj = json.loads(booster.save_config())["learner"]["objective"]["name"]
    gz_write(os.path.join(out, f"{name}.model.json.gz"), model_text)
    gz_write(
        os.path.join(out, f"{name}.cases.json.gz"),
        json.dumps({
            "xgboost": xgb.__version__,
            "objective": obj,
            "note": note,
            "rows": nullify(rows),
            "margin": np.asarray(margin, dtype=np.float64).reshape(len(rows), -1).tolist(),
            "predict": np.asarray(pred, dtype=np.float64).reshape(len(rows), -1).tolist(),
        }),
    )
    print(f"{name}: {booster.num_boosted_rounds()} rounds, {len(rows)} rows", file=sys.stderr)


def with_missing(rng: np.random.Generator, x: np.ndarray, share: float) -> np.ndarray:
    x = x.copy()
    x[rng.random(x.shape) < share] = np.nan
    return x


def numeric_cases(out: str) -> None:
    rng = np.random.default_rng(12)
    nf = 10
    names = [f"f{i}" for i in range(nf)]

    def data(n: int) -> np.ndarray:
        x = rng.normal(size=(n, nf))
        x[:, 3] = np.round(x[:, 3] * 4)  # ties on a discrete feature
        x[:, 7] = np.exp(x[:, 7] * 3)  # wide range
        return x

    def signal(x: np.ndarray) -> np.ndarray:
        z = np.nan_to_num(x)
        return 1.5 * z[:, 0] - z[:, 1] * z[:, 2] + np.sin(3 * z[:, 4]) + 0.3 * z[:, 3] + 0.2 * np.log1p(z[:, 7])

    xtr = with_missing(rng, data(3000), 0.1)
    xte = np.vstack([with_missing(rng, data(150), 0.15), np.full((2, nf), np.nan)])
    base = {"tree_method": "hist", "seed": 3, "nthread": 1}

    y = (signal(xtr) + rng.normal(size=len(xtr)) * 0.5 > 0).astype(float)
    bst = xgb.train({**base, "objective": "binary:logistic", "max_depth": 6, "eta": 0.1},
                    xgb.DMatrix(xtr, label=y, missing=np.nan, feature_names=names), 110)
    rows = np.vstack([xte, threshold_rows(bst, nf, rng, 60)])
    save_case(out, "binary-logistic", bst, rows, "binary:logistic, depth 6, 110 trees, 10 features, NaNs")

    yr = signal(xtr) * 10 + 5 + rng.normal(size=len(xtr))
    bst = xgb.train({**base, "objective": "reg:squarederror", "max_depth": 5, "eta": 0.1},
                    xgb.DMatrix(xtr, label=yr, missing=np.nan, feature_names=names), 50)
    save_case(out, "reg-squarederror", bst, rows, "reg:squarederror, depth 5, 50 trees, NaNs")

    bst = xgb.train({**base, "objective": "reg:logistic", "max_depth": 4, "eta": 0.2},
                    xgb.DMatrix(xtr, label=1 / (1 + np.exp(-signal(xtr))), missing=np.nan, feature_names=names), 30)
    save_case(out, "reg-logistic", bst, rows, "reg:logistic on probabilities as labels")

    bst = xgb.train({**base, "objective": "binary:logitraw", "max_depth": 4, "eta": 0.2},
                    xgb.DMatrix(xtr, label=y, missing=np.nan, feature_names=names), 30)
    save_case(out, "binary-logitraw", bst, rows, "binary:logitraw (margin output)")

    s = signal(xtr)
    yc = np.digitize(s, np.quantile(s, [0.3, 0.55, 0.8])).astype(float)
    bst = xgb.train({**base, "objective": "multi:softprob", "num_class": 4, "max_depth": 4, "eta": 0.2},
                    xgb.DMatrix(xtr, label=yc, missing=np.nan, feature_names=names), 15)
    save_case(out, "multi-softprob", bst, rows, "multi:softprob, 4 classes, 15 rounds")

    # The other objectives the scorer supports: small models, one each.
    z = signal(xtr)
    labels = {
        "count:poisson": rng.poisson(np.exp(0.4 * z)).astype(float),
        "reg:gamma": np.exp(0.3 * z) * rng.gamma(2.0, 0.5, len(z)),
        "reg:tweedie": rng.poisson(np.exp(0.3 * z)) * rng.gamma(2.0, 0.5, len(z)),
        "binary:hinge": y,
        "multi:softmax": yc,
        "reg:absoluteerror": yr,
        "reg:pseudohubererror": yr,
        "reg:squaredlogerror": np.abs(yr),
    }
    for objective, label in labels.items():
        extra = {"num_class": 4} if objective == "multi:softmax" else {}
        bst = xgb.train({**base, "objective": objective, "max_depth": 3, "eta": 0.3, **extra},
                        xgb.DMatrix(xtr, label=label, missing=np.nan, feature_names=names), 8)
        save_case(out, "obj-" + objective.replace(":", "-"), bst, rows[:80], f"{objective}, 8 small trees")

    # No feature names, base_score given by hand (no boost_from_average), max_delta_step etc.
    bst = xgb.train({**base, "objective": "binary:logistic", "max_depth": 3, "base_score": 0.2},
                    xgb.DMatrix(xtr, label=y, missing=np.nan), 20)
    save_case(out, "binary-logistic-unnamed", bst, rows, "no feature names, base_score=0.2")


def categorical_case(out: str) -> None:
    rng = np.random.default_rng(5)
    n = 3000
    x = np.column_stack([
        rng.normal(size=n),
        rng.integers(0, 40, n).astype(float),  # many categories: partition splits
        rng.integers(0, 3, n).astype(float),  # few categories: one-hot splits (max_cat_to_onehot)
        rng.normal(size=n),
    ])
    effect = rng.normal(size=40)
    logit = x[:, 0] + effect[x[:, 1].astype(int)] * 1.5 + (x[:, 2] == 1) * 1.0 - 0.5 * x[:, 3]
    y = (logit + rng.normal(size=n) * 0.5 > 0).astype(float)
    x = with_missing(rng, x, 0.08)
    types = ["q", "c", "c", "q"]
    names = ["num_a", "cat_many", "cat_few", "num_b"]
    d = xgb.DMatrix(x, label=y, missing=np.nan, feature_names=names, feature_types=types, enable_categorical=True)
    bst = xgb.train({"objective": "binary:logistic", "tree_method": "hist", "max_depth": 5, "eta": 0.15,
                     "max_cat_to_onehot": 4, "seed": 9, "nthread": 1}, d, 40)
    m = 200
    rows = np.column_stack([
        rng.normal(size=m),
        rng.integers(0, 40, m).astype(float),
        rng.integers(0, 3, m).astype(float),
        rng.normal(size=m),
    ])
    rows = with_missing(rng, rows, 0.1)
    # Categories never seen in training, a fractional code (truncated like XGBoost's AsCat).
    rows[:6, 1] = [40, 41, 100, 1000, 7.6, 2.2]
    rows[6:9, 2] = [3, 5, 1.9]
    save_case(out, "categorical", bst, rows, "enable_categorical: partition and one-hot splits", [1, 2])


def trainer_case(out: str, worker: str) -> None:
    """The trainer's worker, as the service runs it: Arrow in, model.json + meta.json + scores.arrow out."""
    rng = np.random.default_rng(21)
    n = 600
    colors = np.array(["red", "green", "blue", "amber"])
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    color = colors[rng.integers(0, 4, n)]
    flag = rng.integers(0, 2, n).astype(float)
    logit = 1.2 * x1 - 0.8 * x2 + (color == "red") * 1.0 - 0.5 * flag
    y = (logit + rng.normal(size=n) * 0.7 > 0).astype(float)
    x1[rng.random(n) < 0.1] = np.nan
    color_l = [None if rng.random() < 0.05 else str(c) for c in color]
    holdout = np.zeros(n, dtype=np.uint8)
    holdout[int(n * 0.8):] = 1
    # Categories only in the held-out slice are unknown to the model (coded as missing).
    for i in range(int(n * 0.8), int(n * 0.8) + 5):
        color_l[i] = "violet"
    table = pa.table({
        "__time__": pa.array(np.arange(n, dtype=np.float64) * 1000.0),
        "__label__": pa.array(y),
        "__current_score__": pa.array(np.full(n, 0.5)),
        "__holdout__": pa.array(holdout, type=pa.uint8()),
        "amount": pa.array([None if np.isnan(v) else float(v) for v in x1], type=pa.float64()),
        "balance": pa.array(x2, type=pa.float64()),
        "color": pa.array(color_l, type=pa.utf8()),
        "is_new": pa.array(flag, type=pa.float64()),
    })
    tmp = tempfile.mkdtemp()
    data = os.path.join(tmp, "train.arrow")
    with pa.OSFile(data, "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    res = os.path.join(tmp, "out")
    params = json.dumps({"max_depth": 4, "rounds": 60, "eta": 0.1, "seed": 7})
    subprocess.run([sys.executable, worker, "--data", data, "--out", res, "--device", "cpu", "--params", params],
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(res, "model.json"), encoding="utf-8") as f:
        gz_write(os.path.join(out, "trainer.model.json.gz"), f.read())
    with open(os.path.join(res, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    with pa.memory_map(os.path.join(res, "scores.arrow"), "r") as src:
        scores = ipc.open_file(src).read_all().column("score").to_pylist()
    # Records as a producer sends them (a boolean flag, numbers, strings, missing keys).
    records = []
    for i in range(n):
        r: dict[str, object] = {"balance": float(x2[i]), "is_new": bool(flag[i])}
        if not np.isnan(x1[i]):
            r["amount"] = float(x1[i])
        if color_l[i] is not None:
            r["color"] = color_l[i]
        records.append(r)
    gz_write(os.path.join(out, "trainer.cases.json.gz"),
             json.dumps({"xgboost": xgb.__version__, "meta": meta, "records": records, "scores": scores}))
    print(f"trainer: {n} rows scored by the worker", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--worker", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    numeric_cases(args.out)
    categorical_case(args.out)
    trainer_case(args.out, args.worker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
