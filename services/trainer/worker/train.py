"""driftline trainer worker: trains one XGBoost binary classifier from an Arrow IPC training set.

Usage: train.py --data train.arrow --out DIR [--device auto|cpu|cuda] [--params JSON] [--watch-stdin]

Input columns (written by services/trainer/src/dataset.ts):
  __time__ (float64, epoch ms), __label__ (float64, 0/1), __current_score__ (float64: the base
  version's score of the row, NaN when the row has none), __holdout__ (uint8: 1 = held-out slice,
  the newest rows), then features:
  float64 (null = missing) or utf8 (categorical; coded from the training split's sorted values).

Output in DIR, each file fsynced, result.json last (atomically, then the directory fsynced: its
presence means the run completed, and survives a crash of the host):
  model.json   XGBoost model (Booster.save_model)
  meta.json    feature names, kinds, category codes, parameters, versions, and model_sha256: the
               SHA-256 (hex) of model.json's bytes, written after it, so a reader can tell a
               model.json and a meta.json of two runs apart
  scores.arrow one float64 column `score`: the new model's score of every input row
  result.json  {"metrics": {...}, "device": "cpu"|"cuda", "device_reason": str, ...}

Metrics on the held-out slice: roc_auc, log_loss, accuracy of the new model; current_* of the base
version on the held-out rows that carry its score (current_rows of them), and gate_* of the new
model on those same rows (what the offline gate compares when the two differ).

Exit codes: 0 trained; 3 the data can never train (labels not 0/1, a feature name XGBoost refuses):
the request is rejected, not retried; 75 an OSError (a file missing, a full disk) or packages that
cannot be imported (a venv being rebuilt; the line `worker packages: cannot import ...`): retried,
not counted as an attempt; anything else (a crash, a signal) is retriable, counted.

--watch-stdin: exit when stdin reaches its end. The trainer keeps the pipe open while it lives,
so a worker never outlives it (a crash of the trainer closes the pipe).

Device: `auto` uses CUDA when `nvidia-smi -L` lists a GPU and this xgboost build has CUDA
(xgboost.build_info()["USE_CUDA"]); otherwise the CPU. The device actually used is read back from
the trained booster's configuration, so a silent fallback is reported as what it is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time

EXIT_DATA = 3
EXIT_OS_ERROR = 75  # EX_TEMPFAIL

# An interpreter that starts but cannot import its packages is an environment failing, not a run
# failing: a venv being rebuilt by setup-venv.sh (created, pip install still running). Exit 75 with
# one line the trainer recognises (src/worker.ts: WORKER_IMPORT_FAILURE), so it is retried within
# the environment bound (an hour) instead of counted as a failed run: exit 1 here had dead-lettered
# a good request within seconds (found by a review).
try:
    import numpy as np
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import xgboost as xgb
except (ImportError, OSError) as exc:
    module = (exc.name if isinstance(exc, ImportError) else None) or "its packages"
    said = (str(exc).splitlines() or [""])[0][:300]
    print(f"worker packages: cannot import {module} ({type(exc).__name__}: {said})", file=sys.stderr)
    sys.exit(EXIT_OS_ERROR)

RESERVED = ("__time__", "__label__", "__current_score__", "__holdout__")


def gpu_present() -> tuple[bool, str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False, "nvidia-smi not found"
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20)
    except Exception as exc:  # noqa: BLE001 - any failure means no usable GPU
        return False, f"nvidia-smi failed: {exc}"
    if out.returncode != 0 or "GPU" not in out.stdout:
        return False, f"nvidia-smi lists no GPU (exit {out.returncode})"
    return True, out.stdout.strip().splitlines()[0]


def choose_device(requested: str) -> tuple[str, str]:
    if requested == "cpu":
        return "cpu", "requested cpu"
    cuda_build = bool(xgb.build_info().get("USE_CUDA", False))
    has_gpu, gpu_info = gpu_present()
    if requested == "cuda":
        return "cuda", f"requested cuda ({gpu_info}; xgboost USE_CUDA={cuda_build})"
    if has_gpu and cuda_build:
        return "cuda", f"auto: {gpu_info}"
    if has_gpu:
        return "cpu", "auto: GPU present but this xgboost build has no CUDA (install the gpu flavour)"
    return "cpu", f"auto: {gpu_info}"


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks of ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p >= 0.5) == (y == 1)))


def metrics(prefix: str, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        f"{prefix}roc_auc": roc_auc(y, p),
        f"{prefix}log_loss": log_loss(y, p),
        f"{prefix}accuracy": accuracy(y, p),
    }


def matrix(table: pa.Table, features: list[str], categories: dict[str, list[str]]) -> np.ndarray:
    cols = []
    for name in features:
        col = table.column(name)
        if name in categories:
            codes = {c: float(i) for i, c in enumerate(categories[name])}
            cols.append(np.array([codes.get(v, np.nan) if v is not None else np.nan for v in col.to_pylist()]))
        else:
            cols.append(col.to_numpy(zero_copy_only=False).astype(np.float64))
    return np.column_stack(cols) if cols else np.zeros((table.num_rows, 0))


def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str) -> None:
    # A rename is durable once its directory is: without it a crash of the host could leave a
    # result.json of zero bytes, read as no completed run.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: str, value: object) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, allow_nan=False, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def watch_stdin() -> None:
    # os.read on the descriptor, not sys.stdin: a daemon thread blocked in a buffered read made the
    # interpreter's shutdown abort (it could not take the buffer's lock).
    def run() -> None:
        try:
            while os.read(0, 65536):
                pass
        finally:
            os._exit(EXIT_OS_ERROR)  # the trainer is gone: nobody will read what this run writes

    threading.Thread(target=run, name="watch-stdin", daemon=True).start()


def finite(d: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in d.items() if np.isfinite(v)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--params", default="{}")
    ap.add_argument("--watch-stdin", action="store_true")
    args = ap.parse_args()
    if args.watch_stdin:
        watch_stdin()
    params_in = json.loads(args.params)
    started = time.time()

    with pa.memory_map(args.data, "r") as source:
        table = ipc.open_file(source).read_all()
    features = [n for n in table.column_names if n not in RESERVED]
    y = table.column("__label__").to_numpy().astype(np.float64)
    holdout = table.column("__holdout__").to_numpy().astype(bool)
    current = table.column("__current_score__").to_numpy().astype(np.float64)
    if not features:
        print("the training set has no feature column: nothing to train on", file=sys.stderr)
        return EXIT_DATA
    if not np.all((y == 0) | (y == 1)):
        print("labels must be 0 or 1 (binary classification)", file=sys.stderr)
        return EXIT_DATA
    train = ~holdout
    categories: dict[str, list[str]] = {}
    for name in features:
        if pa.types.is_string(table.schema.field(name).type) or pa.types.is_large_string(table.schema.field(name).type):
            values = table.column(name).to_pylist()
            categories[name] = sorted({v for v, t in zip(values, train) if t and v is not None})
    X = matrix(table, features, categories)

    device, reason = choose_device(args.device)
    params = {
        "objective": "binary:logistic",
        "eval_metric": ["auc", "logloss"],
        "tree_method": "hist",
        "device": device,
        "max_depth": int(params_in.get("max_depth", 4)),
        "eta": float(params_in.get("eta", 0.1)),
        "seed": int(params_in.get("seed", 7)),
        "subsample": float(params_in.get("subsample", 1.0)),
    }
    rounds = int(params_in.get("rounds", 100))
    # XGBoost refuses feature names with [, ] or < (embedding columns such as emb[0] are common):
    # such a model names its inputs by position (f0, f1, ...) and meta.json keeps the real names,
    # in the same order, which is how the scorer binds them.
    names = features if not any(c in n for n in features for c in "[]<") else None
    try:
        dtrain = xgb.DMatrix(X[train], label=y[train], feature_names=names)
        dall = xgb.DMatrix(X, feature_names=names)
    except ValueError as exc:
        # XGBoost refuses the data itself: no retry can help.
        print(f"xgboost refused the training set: {exc}", file=sys.stderr)
        return EXIT_DATA
    booster = xgb.train(params, dtrain, num_boost_round=rounds)
    used = json.loads(booster.save_config())["learner"]["generic_param"].get("device", device)
    if used != device:
        reason += f"; xgboost fell back to {used}"
    scores = booster.predict(dall).astype(np.float64)

    os.makedirs(args.out, exist_ok=True)
    booster.save_model(os.path.join(args.out, "model.json"))
    fsync_file(os.path.join(args.out, "model.json"))
    model_sha256 = file_sha256(os.path.join(args.out, "model.json"))
    with pa.OSFile(os.path.join(args.out, "scores.arrow"), "wb") as sink:
        score_table = pa.table({"score": pa.array(scores, type=pa.float64())})
        with ipc.new_file(sink, score_table.schema) as writer:
            writer.write_table(score_table)
    fsync_file(os.path.join(args.out, "scores.arrow"))
    write_json(
        os.path.join(args.out, "meta.json"),
        {
            "features": features,
            "categories": categories,
            "params": params,
            "rounds": rounds,
            "xgboost": xgb.__version__,
            "python": platform.python_version(),
            # Names the model.json it describes: a version's files replaced by another run of the
            # request (two trainers after a rebalance) could otherwise pair one run's model with
            # the other's features and categories, unnoticed (found by a review).
            "model_sha256": model_sha256,
        },
    )
    fsync_dir(args.out)  # model.json, scores.arrow, meta.json are there before result.json is
    m = {}
    m.update(metrics("", y[holdout], scores[holdout]))
    # The base version is compared on the held-out rows it scored, and so is the candidate (gate_*):
    # rows answered by another version (a canary, an older one) say nothing about the base. The
    # trainer's label wait counts the classes of these same rows (measuresBase in src/dataset.ts).
    covered = holdout & np.isfinite(current)
    m["current_rows"] = float(covered.sum())
    if covered.any():
        m.update(metrics("current_", y[covered], current[covered]))
        m.update(metrics("gate_", y[covered], scores[covered]))
    m.update(metrics("train_", y[train], scores[train]))
    write_json(
        os.path.join(args.out, "result.json"),
        {
            "metrics": finite(m),
            "device": used,
            "device_reason": reason,
            "rows_train": int(train.sum()),
            "rows_holdout": int(holdout.sum()),
            "seconds": time.time() - started,
            "xgboost": xgb.__version__,
        },
    )
    fsync_dir(args.out)
    print(json.dumps({"device": used, "reason": reason, "metrics": finite(m)}))
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except OSError as exc:
        print(f"OS error: {exc}", file=sys.stderr)
        code = EXIT_OS_ERROR
    sys.exit(code)
