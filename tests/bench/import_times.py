"""`make bench`: cold import time of every Cloud Function target (goal: 0.5 s each)."""

from __future__ import annotations

import base64
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOAL_SECONDS = 0.5
RUNS = 5

PROBE = """
import time
started = time.perf_counter()
import main
getattr(main, {target!r})
print(time.perf_counter() - started)
"""


def _environment() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "COINFRS_ENV_FILE": "",
        "SECRET_KEY": "bench-" + "x" * 40,
        "ENCRYPTION_KEY": base64.b64encode(b"b" * 32).decode(),
        "PYTHONDONTWRITEBYTECODE": "",
    }


def import_seconds(target: str) -> list[float]:
    """Wall time to import main.py and resolve `target`, each run in a fresh interpreter."""
    times = []
    for _ in range(RUNS):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(target=target)],
            cwd=ROOT,
            env=_environment(),
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return times


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from main import TARGETS

    print(f"cold import time per function target (median of {RUNS}; goal <= {GOAL_SECONDS} s)")
    over = []
    for target in TARGETS:
        times = import_seconds(target)
        median = statistics.median(times)
        flag = "ok" if median <= GOAL_SECONDS else "OVER GOAL"
        if median > GOAL_SECONDS:
            over.append(target)
        spread = f"min {min(times):.3f} s  max {max(times):.3f} s"
        print(f"  {target:<24} median {median:.3f} s  {spread}  {flag}")
    if over:
        print(f"over the goal: {', '.join(over)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
