"""What one metric observation costs, in one process vs prometheus-client's multiprocess mode.

    .venv/bin/python -m bench.metrics_cost

Runs itself twice in fresh interpreters (the mode is chosen when prometheus-client creates a
metric), once without and once with PROMETHEUS_MULTIPROC_DIR, and prints the best of 5 × 200,000
calls of each operation the hot paths use. The figures quoted in events/metrics.py come from here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import timeit

CALLS, REPEATS = 200_000, 5


def measure() -> None:
    from prometheus_client import Counter, Histogram, values

    counter = Counter("cost_total", "cost", ["source", "status", "reason"], registry=None)
    histogram = Histogram("cost_seconds", "cost", ["source"], registry=None)
    operations = {
        "counter.labels(…).inc()": lambda: counter.labels("shop", "200", "accepted").inc(),
        "histogram.labels(…).observe()": lambda: histogram.labels("shop").observe(0.003),
    }
    mode = "multiprocess" if getattr(values.ValueClass, "_multiprocess", False) else "one process"
    for name, operation in operations.items():
        best = min(timeit.repeat(operation, number=CALLS, repeat=REPEATS)) / CALLS
        print(f"{mode:>13}  {name:<30} {best * 1e6:6.2f} µs")


def main() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    code = "from bench.metrics_cost import measure; measure()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    with tempfile.TemporaryDirectory() as directory:
        env["PROMETHEUS_MULTIPROC_DIR"] = directory
        subprocess.run([sys.executable, "-c", code], env=env, check=True)


if __name__ == "__main__":
    main()
