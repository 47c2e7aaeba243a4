"""Writes the bench's synthetic model as a file XGBoost itself loads, then checks that it does.

usage: python xgboost-model.py SRC DST

The synthetic model (libs/scoring bench, `syntheticModelJson`) holds everything the TypeScript
scorer reads, but XGBoost's loader also requires fields that do not change a prediction
(learner attributes, `boost_from_average`, the objective's `reg_loss_param`, the categorical
index `cats`, `iteration_indptr`, each tree's `num_deleted`) and reads the float arrays as JSON
numbers with a fraction: `JSON.stringify` writes 0 and 1 as integers, which it rejects. This adds
the fields with XGBoost's defaults and rewrites the float arrays; the trees, splits, leaves, base
score and objective stay as they are (the caller checks MLServer's answers against our scorer).
"""

import json
import sys

import xgboost

FLOAT_ARRAYS = ("split_conditions", "base_weights", "loss_changes", "sum_hessian")


def complete(model: dict) -> dict:
    learner = model["learner"]
    learner.setdefault("attributes", {})
    learner["learner_model_param"].setdefault("boost_from_average", "1")
    learner["objective"].setdefault("reg_loss_param", {"scale_pos_weight": "1"})
    booster = learner["gradient_booster"]["model"]
    booster.setdefault("cats", {"enc": [], "feature_segments": [], "sorted_idx": []})
    # One tree per boosting round (binary objective, num_parallel_tree 1).
    booster.setdefault("iteration_indptr", list(range(len(booster["trees"]) + 1)))
    for tree in booster["trees"]:
        tree["tree_param"].setdefault("num_deleted", "0")
        for key in FLOAT_ARRAYS:
            tree[key] = [float(x) for x in tree[key]]
    return model


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        model = complete(json.load(f))
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(model, f)
    booster = xgboost.Booster()
    booster.load_model(dst)
    print(f"xgboost {xgboost.__version__} loaded {booster.num_boosted_rounds()} rounds")


if __name__ == "__main__":
    main()
