"""Both ASGI server candidates serve the portal's Channels stack and deliver group broadcasts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_uvicorn_and_daphne_deliver_every_broadcast_to_every_socket() -> None:
    # The benchmark script at its smallest: a few sockets per server, every message counted.
    result = subprocess.run(
        [
            sys.executable,
            "bench/asgi_bench.py",
            "--clients",
            "5",
            "--servers",
            "uvicorn,daphne",
            "--paced",
            "3",
            "--rate",
            "50",
            "--burst",
            "3",
        ],
        cwd=REPO,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "kraken_portal.settings.base"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")][1:]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    assert [row[0] for row in cells] == ["uvicorn", "daphne"]
    for row in cells:
        assert row[-1] == "0", f"{row[0]} lost messages: {result.stdout}"
