"""Times Evidently's data drift report on two CSV files: pandas read_csv + Report(DataDriftPreset).

Usage: evidently_drift.py REF.csv CUR.csv [--stattest psi]
Prints one JSON object: seconds, number of drifted columns, evidently version.
"""
import json
import sys
import time

t0 = time.perf_counter()
import pandas as pd  # noqa: E402
from evidently import Report, __version__  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

import_seconds = time.perf_counter() - t0
ref_path, cur_path = sys.argv[1], sys.argv[2]
stattest = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--stattest" else None

t1 = time.perf_counter()
ref = pd.read_csv(ref_path)
cur = pd.read_csv(cur_path)
preset = DataDriftPreset(method=stattest) if stattest else DataDriftPreset()
snapshot = Report([preset]).run(current_data=cur, reference_data=ref)
result = snapshot.dict()
seconds = time.perf_counter() - t1

drifted = None
for metric in result.get("metrics", []):
    value = metric.get("value")
    if isinstance(value, dict) and "count" in value and "DriftedColumnsCount" in str(metric.get("metric_name", "")):
        drifted = int(value["count"])
print(json.dumps({"seconds": seconds, "import_seconds": import_seconds, "drifted_columns": drifted, "evidently": __version__}))
