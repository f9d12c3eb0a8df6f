"""`make bench`: run every benchmark script in bench/ and print its figures.

Benchmarks measure speed and scale; they print tables and never pass or fail on a number.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ORDER = [
    "sandbox_bench.py",
    "kraken_client_bench.py",
    "asgi_bench.py",
    "market_bench.py",
    "http_bench.py",
    "order_path_bench.py",
    "schedules_bench.py",
    "treasury_bench.py",
    "blotter_bench.py",
]


def main() -> int:
    scripts = [BENCH / name for name in ORDER if (BENCH / name).exists()]
    failures = 0
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        result = subprocess.run([sys.executable, str(script), *sys.argv[1:]], check=False)
        if result.returncode != 0:
            failures += 1
            print(f"{script.name} exited with {result.returncode}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
