"""Writes libs/performance/test/fixtures/nannyml-cbpe.json: NannyML's CBPE on a seeded dataset.

A binary classifier whose scores are over-confident (so NannyML's calibration check decides to
calibrate), a labeled reference, and analysis chunks of which two have a shifted covariate
(CBPE's assumption: P(y | x) unchanged, only P(x) moves). The fixture stores the data (scores
rounded to 6 decimals, labels) beside NannyML's per-chunk estimates and scikit-learn's isotonic
calibration of a probe grid, so the TypeScript test runs on exactly the data NannyML saw.
"""

import json
import sys

import nannyml as nml
import numpy as np
import pandas as pd
import sklearn
from sklearn.isotonic import IsotonicRegression

SEED = 20261202
REFERENCE = 5000
CHUNK = 2000
THRESHOLD = 0.5
# (mean, sd) of the covariate per analysis chunk: three like the reference, two shifted.
CHUNKS = [(0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (1.0, 1.0), (-0.8, 0.6)]


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sample(rng, n, mean, sd):
    x = rng.normal(mean, sd, n)
    logit = 1.6 * x - 0.4
    y = rng.binomial(1, sigmoid(logit))
    # Over-confident model: right ranking, logits stretched 2.2x plus a bias.
    score = np.round(sigmoid(2.2 * logit + 0.3), 6)
    return score, y


def main(out):
    rng = np.random.default_rng(SEED)
    ref_s, ref_y = sample(rng, REFERENCE, 0.0, 1.0)
    chunks = [sample(rng, CHUNK, m, sd) for m, sd in CHUNKS]
    ana_s = np.concatenate([c[0] for c in chunks])
    ana_y = np.concatenate([c[1] for c in chunks])

    def frame(s, y):
        return pd.DataFrame({'y_pred_proba': s, 'y_pred': (s >= THRESHOLD).astype(int), 'y_true': y})

    metrics = ['roc_auc', 'accuracy', 'precision', 'recall', 'f1']
    est = nml.CBPE(
        y_pred_proba='y_pred_proba',
        y_pred='y_pred',
        y_true='y_true',
        problem_type='classification_binary',
        metrics=metrics,
        chunk_size=CHUNK,
    )
    est.fit(frame(ref_s, ref_y))
    result = est.estimate(frame(ana_s, ana_y)).filter(period='analysis').to_df()
    estimates = {m: [float(v) for v in result[(m, 'value')]] for m in metrics}

    iso = IsotonicRegression(out_of_bounds='clip', increasing=True).fit(ref_s, ref_y)
    probe = np.round(np.linspace(-0.05, 1.05, 221), 6)

    fixture = {
        'generator': 'libs/performance/scripts/make_cbpe_fixture.py',
        'versions': {'nannyml': nml.__version__, 'scikit-learn': sklearn.__version__, 'numpy': np.__version__,
                     'pandas': pd.__version__},
        'seed': SEED,
        'threshold': THRESHOLD,
        'chunk_size': CHUNK,
        'chunk_covariate': CHUNKS,
        'needs_calibration': bool(est.needs_calibration),
        'reference': {'scores': ref_s.tolist(), 'labels': ''.join(str(int(v)) for v in ref_y)},
        'analysis': {'scores': ana_s.tolist(), 'labels': ''.join(str(int(v)) for v in ana_y)},
        'nannyml': estimates,
        'isotonic_probe': {'x': probe.tolist(), 'y': [float(v) for v in iso.predict(probe)]},
    }
    with open(out, 'w') as f:
        json.dump(fixture, f, separators=(',', ':'))
        f.write('\n')
    print(json.dumps({'needs_calibration': fixture['needs_calibration'], 'nannyml': estimates}, indent=1))


if __name__ == '__main__':
    main(sys.argv[1])
