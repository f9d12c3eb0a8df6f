"""Make sure a Redis answers at REDIS_URL; start `redis-server` under var/ when none does.

Used by `make run`, `make test` and `make bench`. PostgreSQL is optional: without DATABASE_URL
the portal uses SQLite under var/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


def redis_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_redis(url: str) -> None:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if redis_answers(host, port):
        return
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit(
            f"No Redis answers at {url} and there is no redis-server to start.\n"
            "Install one (Debian/Ubuntu: 'apt-get install redis-server';"
            " macOS: 'brew install redis')"
            " or set REDIS_URL to a running Redis."
        )
    if host not in {"127.0.0.1", "localhost", "::1"}:
        sys.exit(f"No Redis answers at {url}, and it is not on this machine to start it.")
    VAR.mkdir(exist_ok=True)
    print(f"Starting redis-server on {host}:{port} (data and log under var/)")
    subprocess.run(  # noqa: S603 - fixed argument list, no shell.
        [
            binary,
            "--daemonize",
            "yes",
            "--bind",
            host,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(VAR),
            "--logfile",
            str(VAR / "redis.log"),
            "--pidfile",
            str(VAR / "redis.pid"),
        ],
        check=True,
    )
    for _ in range(50):
        if redis_answers(host, port):
            return
        time.sleep(0.1)
    sys.exit(f"redis-server did not answer on {host}:{port}; see var/redis.log")


if __name__ == "__main__":
    ensure_redis(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
