"""The portal's ASGI server, configured in this one place.

`make run` (Procfile), the browser tests and `make bench` all start the portal through here, so
what is tested and measured is what runs:

    python -m kraken_portal.serve --host 127.0.0.1 --port 8000 [--workers N]

uvicorn was chosen over daphne by bench/asgi_bench.py. In production run one process per core
with `--workers` (or WEB_CONCURRENCY); each process fans market data out to its own sockets
(apps.market.hub). Measured with 2,000 overview sockets on 2 cores: p99 358-455 ms with one
process, 166-199 ms with two, mostly because a full garbage collection pauses a process for
time proportional to the sockets it holds. `make run` keeps one, as a demo needs no more.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

APP = "kraken_portal.asgi:application"

# WebSocket compression (permessage-deflate) is off. Measured by bench/market_bench.py on this
# 2-core machine, 1,000 overview sockets, every frame 12 price tiles (about 6 KB) at 4 Hz:
# compressing each frame once per socket took 62% of a core against 16% without, p99
# tick-to-client latency 293 ms against 194 ms, and about 45 KiB more memory per socket. Frames
# are small and at most four a second (at most ~25 KB/s per socket uncompressed). And sockets
# will carry a member's private events (orders, balances) beside text others can influence;
# compressing the two in one stream is the pattern BREACH and CRIME read secrets through.
OPTIONS: dict[str, Any] = {
    "ws": "websockets-sansio",
    "ws_per_message_deflate": False,
    "access_log": False,
}


def _settings_load() -> None:
    """Read the settings in the parent process, so a refusal stops the server at once.

    Production settings refuse to load without what they require (SECRET_KEY, AUDIT_HMAC_KEY).
    Left to uvicorn, with `--workers` the supervisor keeps running while each worker dies on
    import; here the error ends the start with its message and a non-zero status.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kraken_portal.settings.base")
    from django.conf import settings

    # The first attribute read loads the module; it raises ImproperlyConfigured on a refusal.
    if not settings.INSTALLED_APPS:
        raise SystemExit("No INSTALLED_APPS: the settings module is not the portal's.")


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m kraken_portal.serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORTAL_PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")))
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="compress WebSocket frames (off by default; see OPTIONS) - for measurements",
    )
    args = parser.parse_args(argv)
    _settings_load()
    options = dict(OPTIONS, ws_per_message_deflate=args.deflate)
    uvicorn.run(
        APP,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        **options,
    )


if __name__ == "__main__":
    main()
