"""The desk's order path, in one process: `order_submit` (the ticket's rules, risk limits, the
order, its AddOrder operation and audit rows, then the send and the result hook) until the
order is acknowledged (DONE, linked to Kraken's txid), against a direct python-kraken-sdk
AddOrder to the same local sandbox. Prints p50/p99 of both and the portal's overhead.

What it leaves out (not measured here; see the issue note): the broker hop to a Celery worker
and the socket's push to the trader's page. Tasks run eagerly in this process, in a scratch
SQLite database, so the figure is the portal's own work on the path.

    .venv/bin/python bench/order_path_bench.py [--orders 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SCRATCH = Path(tempfile.mkdtemp(prefix="order-bench-")) / "bench.sqlite3"
os.environ["DATABASE_URL"] = f"sqlite:///{SCRATCH}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kraken_portal.settings.base")
os.environ.setdefault(
    "PORTAL_KEYRING", "k1:" + __import__("base64").b64encode(os.urandom(32)).decode()
)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from tests.plugins.sandbox import start_sandbox, stop_sandbox  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=100)
    args = parser.parse_args()

    sandbox = start_sandbox()
    try:
        settings.KRAKEN_API_URL = sandbox.url
        call_command("migrate", verbosity=0)
        from kraken.spot import Trade

        from apps.kraken.services import reference_data_refresh
        from apps.trading.rules import Ticket
        from apps.trading.services import order_submit
        from apps.vault.policy import ALLOWED
        from kraken_portal.celery import app
        from tests.exchange.conftest import _store
        from tests.factories import MembershipFactory, OrganizationFactory, master_account

        app.conf.task_always_eager = True
        reference_data_refresh()
        account_id = sandbox.create_account({"USD": "10000000", "XBT": "10"}, tier="pro")
        permissions = sorted(str(p) for p in ALLOWED["trading"])
        org = OrganizationFactory(name="Bench Capital", slug="bench")
        trader = MembershipFactory(org=org, role="trader")
        account = master_account(org, tier="pro")
        api_key, secret = sandbox.create_key(account_id, permissions=permissions)
        _store(trader, account, api_key, secret, "trading")
        sdk_key, sdk_secret = sandbox.create_key(account_id, permissions=permissions)
        sdk = Trade(key=sdk_key, secret=sdk_secret, url=sandbox.url)

        portal: list[float] = []
        direct: list[float] = []
        for n in range(args.orders):
            price = str(1000 + n % 500)
            start = time.perf_counter()
            sdk.create_order(
                ordertype="limit", side="buy", pair="XBTUSD", volume="0.01", price=price
            )
            direct.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            order = order_submit(
                membership=trader,
                ticket=Ticket(
                    account=account,
                    pair="BTC/USD",
                    side="buy",
                    order_type="limit",
                    quantity=Decimal("0.01"),
                    price=price,
                    confirmed=True,
                ),
            )
            portal.append((time.perf_counter() - start) * 1000)
            order.refresh_from_db()
            if not order.txid:
                print(f"order {order.pk} not acknowledged: {order.state} {order.state_reason}")
        print(f"orders: {args.orders} each way, one at a time, loopback sandbox")
        print(f"{'path':42} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
        for name, values in (
            ("python-kraken-sdk AddOrder (direct)", direct),
            ("order_submit -> acknowledged (portal)", portal),
        ):
            print(
                f"{name:42} {percentile(values, 0.5):8.1f} {percentile(values, 0.99):8.1f} "
                f"{statistics.fmean(values):8.1f}"
            )
        print(
            f"portal overhead at p50: {percentile(portal, 0.5) - percentile(direct, 0.5):+.1f} ms"
            " (goal in the issue: <= +30 ms, measured there to the trader's socket)"
        )
    finally:
        stop_sandbox(sandbox)
        SCRATCH.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
