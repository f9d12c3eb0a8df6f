"""Command-line parsing shared by ``python -m apps.sandbox`` and ``manage.py sandbox``."""

from __future__ import annotations

import argparse
import os
import random

from .ratelimit import TIERS
from .server import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=None, help="market/id seed (random if omitted)")
    parser.add_argument("--tier", choices=sorted(TIERS), default="intermediate")
    parser.add_argument(
        "--state",
        dest="state_file",
        default=None,
        help="JSON state file (restored at start, saved periodically)",
    )
    parser.add_argument(
        "--faults", default="none", help="fault profile: none, slow, flaky, lossy, chaos"
    )
    parser.add_argument(
        "--admin-token", default=None, help="control API token (default: $SANDBOX_ADMIN_TOKEN)"
    )
    parser.add_argument("--tick-ms", type=int, default=250, help="market tick (real ms)")
    parser.add_argument(
        "--clock-speed", type=float, default=1.0, help="simulated seconds per real second"
    )
    parser.add_argument(
        "--withdraw-step",
        type=float,
        default=5.0,
        help="simulated seconds per withdrawal status step",
    )
    parser.add_argument(
        "--earn-delay",
        type=float,
        default=5.0,
        help="simulated seconds for an Earn (de)allocation to settle",
    )
    parser.add_argument(
        "--legacy-f-balances",
        action="store_true",
        help="Balance/BalanceEx list Earn funds as '.F' assets (Kraken's shape before 13 Nov 2025)",
    )


def config_from(ns: argparse.Namespace) -> Config:

    token = ns.admin_token or os.environ.get("SANDBOX_ADMIN_TOKEN", "")
    seed = ns.seed if ns.seed is not None else random.SystemRandom().randrange(1, 2**31)
    return Config(
        host=ns.host,
        port=ns.port,
        seed=seed,
        tier=ns.tier,
        state_file=ns.state_file,
        faults=ns.faults,
        admin_token=token,
        tick_ms=ns.tick_ms,
        clock_speed=ns.clock_speed,
        withdraw_step=ns.withdraw_step,
        earn_delay=ns.earn_delay,
        legacy_f_balances=ns.legacy_f_balances,
    )


def main(argv: list[str] | None = None) -> None:
    from .server import run

    parser = argparse.ArgumentParser(
        prog="python -m apps.sandbox", description="Local Kraken SPOT exchange sandbox"
    )
    add_arguments(parser)
    ns = parser.parse_args(argv)
    run(config_from(ns))
