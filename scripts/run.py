"""`make run`: prepare var/, migrate, then start every process of the portal under honcho.

Processes (Procfile): the ASGI web server, a Celery worker (queues default, orders, funding),
Celery beat, the market-data feeder and the Kraken sandbox. Ctrl-C stops them all.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# PORTAL_VAR_DIR lets two portals share a checkout without sharing secrets, state or database.
VAR = Path(os.environ.get("PORTAL_VAR_DIR", ROOT / "var")).resolve()
sys.path.insert(0, str(ROOT / "scripts"))

from ensure_services import ensure_redis  # noqa: E402


def _persisted(name: str, make: str) -> str:
    """A per-checkout secret kept under var/ so restarts keep sessions, vault and audit chain."""
    path = VAR / name
    if not path.exists():
        path.write_text(make)
        path.chmod(0o600)
    return path.read_text().strip()


def main() -> None:
    VAR.mkdir(exist_ok=True)
    env = dict(os.environ)
    env["PORTAL_VAR_DIR"] = str(VAR)
    # The portal's own 404 and 500 pages, as in production; `DEBUG=1 make run` asks for
    # Django's debug pages instead. Static files are served by WhiteNoise either way.
    env.setdefault("DEBUG", "0")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    env.setdefault("PORTAL_PORT", "8000")
    env.setdefault("SANDBOX_PORT", "8765")
    env.setdefault("DEMO_PASSWORD", "demo-portal-2026")
    sandbox = f"127.0.0.1:{env['SANDBOX_PORT']}"
    env.setdefault("KRAKEN_API_URL", f"http://{sandbox}")
    env.setdefault("KRAKEN_WS_URL", f"ws://{sandbox}/ws/v2")
    env.setdefault("KRAKEN_WS_AUTH_URL", f"ws://{sandbox}/ws-auth/v2")
    env.setdefault(
        "SANDBOX_ADMIN_TOKEN", _persisted("sandbox-admin-token", secrets.token_urlsafe(24))
    )
    env.setdefault("SECRET_KEY", _persisted("secret-key", secrets.token_urlsafe(50)))
    env.setdefault(
        "PORTAL_KEYRING",
        _persisted("keyring", "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()),
    )
    env.setdefault("SITE_URL", f"http://127.0.0.1:{env['PORTAL_PORT']}")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    ensure_redis(env["REDIS_URL"])
    python = sys.executable
    subprocess.run(  # noqa: S603 - fixed argument list.
        [python, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    # Hashed, compressed copies for WhiteNoise (with DEBUG off, pages name the hashed files).
    subprocess.run(  # noqa: S603 - fixed argument list.
        [python, "manage.py", "collectstatic", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    os.chdir(ROOT)
    os.execve(  # noqa: S606 - replaces this process with honcho, which supervises the rest.
        str(Path(python).parent / "honcho"),
        ["honcho", "start", "-f", "Procfile", "--no-colour"],
        env,
    )


if __name__ == "__main__":
    main()
