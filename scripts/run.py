"""`make run`: prepare var/, migrate, collect static, load the demo, then start every process.

Processes (Procfile): the ASGI web server, a Celery worker (queues default, orders, funding),
Celery beat, the market-data feeder, the private streams and the Kraken sandbox. The sandbox
starts first; once it answers, `demo_data` runs here, once (never in the web process, so a
deployment that starts the web process cannot load demo users); then the other processes start.
With no sandbox in the Procfile (pointed at the real Kraken) no demo is loaded. Ctrl-C stops
them all.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import time
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


SANDBOX = "sandbox"


def _procfile_names() -> list[str]:
    names = []
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, separator, _ = line.partition(":")
        if separator and name.strip() and not name.lstrip().startswith("#"):
            names.append(name.strip())
    return names


def _start(names: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """These Procfile processes under one honcho (which stops them on SIGINT or SIGTERM)."""
    honcho = str(Path(sys.executable).parent / "honcho")
    return subprocess.Popen(  # noqa: S603 - fixed argument list.
        [honcho, "start", "-f", "Procfile", "--no-colour", *names], cwd=ROOT, env=env
    )


def _stop(groups: list[subprocess.Popen[bytes]]) -> None:
    for group in groups:
        if group.poll() is None:
            group.terminate()
    for group in groups:
        try:
            group.wait(timeout=20)
        except subprocess.TimeoutExpired:
            group.kill()


def _supervise(groups: list[subprocess.Popen[bytes]]) -> int:
    """Run until any group stops (a process died) or Ctrl-C; then stop the rest."""
    try:
        while all(group.poll() is None for group in groups):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass  # The terminal sent SIGINT to the honchos as well; they are stopping.
    finally:
        _stop(groups)
    return max((group.returncode or 0 for group in groups), default=0)


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
    names = _procfile_names()
    groups: list[subprocess.Popen[bytes]] = []
    try:
        if SANDBOX in names:
            groups.append(_start([SANDBOX], env))
            demo = subprocess.run(  # noqa: S603 - fixed argument list.
                [python, "manage.py", "demo_data", "--wait-for-sandbox"], cwd=ROOT, env=env
            )
            if demo.returncode != 0:
                print("make run: the demo could not be loaded (see above); stopping.")
                _stop(groups)
                sys.exit(demo.returncode)
        else:
            print("make run: no sandbox in the Procfile, so no demo data (it is sandbox-only).")
        groups.append(_start([name for name in names if name != SANDBOX], env))
    except BaseException:
        _stop(groups)
        raise
    sys.exit(_supervise(groups))


if __name__ == "__main__":
    main()
