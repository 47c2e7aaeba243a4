"""Writes libs/performance/test/fixtures/nannyml-cbpe-saturated.json: NannyML's CBPE and
scikit-learn's isotonic calibration on strongly over-confident, saturated scores.

Two seeded cases, each a labeled reference and one analysis chunk: `k8` (float64 scores, logits
stretched 8x: about a quarter of the scores lie beyond 1e-6 of 0 or 1, some are exactly 1) and
`k15-f32` (logits stretched 15x and the scores rounded to float32, as many models emit them: about
half beyond 1e-6, many exactly 0 or 1, the smallest ~1e-40). The fixture stores the data beside
NannyML's estimate (ROC AUC, accuracy, F1) and scikit-learn's `IsotonicRegression.predict` of the
analysis scores, which pools reference scores closer than 1e-15.
"""

import json
import sys
import warnings

import nannyml as nml
import numpy as np
import pandas as pd
import sklearn
from sklearn.isotonic import IsotonicRegression

SEED = 20261207
REFERENCE = 2500
ANALYSIS = 2500
THRESHOLD = 0.5
CASES = [('k8', 8.0, False), ('k15-f32', 15.0, True)]


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def sample(rng, n, stretch, f32):
    z = rng.normal(-0.5, 1.5, n)
    y = rng.binomial(1, sigmoid(z))
    with np.errstate(over='ignore'):
        score = sigmoid(stretch * z)
        if f32:
            score = (1.0 / (1.0 + np.exp(-(stretch * z).astype(np.float32)))).astype(np.float32).astype(np.float64)
    return score, y


def frame(s, y=None):
    df = pd.DataFrame({'y_pred_proba': s, 'y_pred': (s >= THRESHOLD).astype(int)})
    if y is not None:
        df['y_true'] = y
    return df


def main(out):
    warnings.filterwarnings('ignore', message='The resulting number of chunks is too low')
    rng = np.random.default_rng(SEED)
    cases = []
    metrics = ['roc_auc', 'accuracy', 'f1']
    for name, stretch, f32 in CASES:
        ref_s, ref_y = sample(rng, REFERENCE, stretch, f32)
        ana_s, ana_y = sample(rng, ANALYSIS, stretch, f32)
        est = nml.CBPE(y_pred_proba='y_pred_proba', y_pred='y_pred', y_true='y_true',
                       problem_type='classification_binary', metrics=metrics, chunk_number=1)
        est.fit(frame(ref_s, ref_y))
        result = est.estimate(frame(ana_s)).filter(period='analysis').to_df()
        iso = IsotonicRegression(out_of_bounds='clip', increasing=True).fit(ref_s, ref_y)
        cases.append({
            'name': name,
            'stretch': stretch,
            'float32': f32,
            'needs_calibration': bool(est.needs_calibration),
            'reference': {'scores': ref_s.tolist(), 'labels': ''.join(str(int(v)) for v in ref_y)},
            'analysis': {'scores': ana_s.tolist()},
            'nannyml': {m: float(result[(m, 'value')].iloc[0]) for m in metrics},
            'isotonic_predict': [float(v) for v in iso.predict(ana_s)],
            'beyond_1e-6': float(np.mean((ana_s < 1e-6) | (ana_s > 1 - 1e-6))),
            'exactly_0_or_1': int(np.sum((ana_s == 0) | (ana_s == 1))),
        })
    fixture = {
        'generator': 'libs/performance/scripts/make_cbpe_saturated_fixture.py',
        'versions': {'nannyml': nml.__version__, 'scikit-learn': sklearn.__version__, 'numpy': np.__version__,
                     'pandas': pd.__version__},
        'seed': SEED,
        'threshold': THRESHOLD,
        'cases': cases,
    }
    with open(out, 'w') as f:
        json.dump(fixture, f, separators=(',', ':'))
        f.write('\n')
    for c in cases:
        print(c['name'], c['needs_calibration'], c['nannyml'], c['beyond_1e-6'], c['exactly_0_or_1'])


if __name__ == '__main__':
    main(sys.argv[1])
