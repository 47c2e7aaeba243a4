"""Times Evidently's data drift report on two CSV files: pandas read_csv + Report(DataDriftPreset).

Usage: evidently_drift.py REF.csv CUR.csv [--stattest psi]
Prints one JSON object: seconds (reading included, imports not), CPU seconds of the same span (all
threads), import seconds, number of drifted
columns, each column's test, score, threshold and verdict, peak RSS (MiB), evidently version.
"""
import json
import resource
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
c1 = time.process_time()
ref = pd.read_csv(ref_path)
cur = pd.read_csv(cur_path)
preset = DataDriftPreset(method=stattest) if stattest else DataDriftPreset()
# include_tests: each column's verdict (a failed "Value Drift" test) comes from Evidently itself.
snapshot = Report([preset], include_tests=True).run(current_data=cur, reference_data=ref)
result = snapshot.dict()
seconds = time.perf_counter() - t1
cpu_seconds = time.process_time() - c1

drifted = None
columns = {}
for metric in result.get("metrics", []):
    value = metric.get("value")
    config = metric.get("config", {})
    if isinstance(value, dict) and "count" in value and "DriftedColumnsCount" in str(metric.get("metric_name", "")):
        drifted = int(value["count"])
    elif str(config.get("type", "")).endswith("ValueDrift"):
        columns[config["column"]] = {"method": config["method"], "score": value, "threshold": config["threshold"]}
for test in result.get("tests", []):
    params = test.get("metric_config", {}).get("params", {})
    if str(params.get("type", "")).endswith("ValueDrift") and params.get("column") in columns:
        columns[params["column"]]["drifted"] = test["status"] == "FAIL"
peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(
    json.dumps(
        {
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "import_seconds": import_seconds,
            "drifted_columns": drifted,
            "columns": columns,
            "peak_rss_mb": peak_rss_mb,
            "evidently": __version__,
        }
    )
)
