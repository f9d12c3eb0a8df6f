"""`make run` uses SQLite when DATABASE_URL is unset: every migration must run there too.

An app that reaches for a PostgreSQL-only field (an ArrayField, say) passes every other test,
which run on PostgreSQL, and breaks `make run` on a fresh machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_migration_runs_on_the_embedded_sqlite_database(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env["PORTAL_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "portal.sqlite3").exists()
