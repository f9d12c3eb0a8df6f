"""The treasury's balances page at scale: 20 accounts x 50 assets (1,000 assets, each with a
spot and an Earn wallet), every asset priced. Prints the time to build the page's data
(`treasury_view`: balances read, 1,000 valuations) and to serve the whole page through Django,
p50/p99 over repeated requests, and the number of SQL queries per page.

It runs in a scratch test database on the server of DATABASE_URL (created and dropped here)
and uses REDIS_URL for the prices (its market keys are cleared before and after).

    .venv/bin/python bench/treasury_bench.py [--accounts 20] [--assets 50] [--requests 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import cast

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40)
    args, _ = parser.parse_known_args()
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kraken_portal.settings.test")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    if connection.vendor != "postgresql":
        print("treasury_bench: needs PostgreSQL (DATABASE_URL); skipped")
        return 0
    setup_test_environment()
    settings.ALLOWED_HOSTS = ["*"]
    # A scratch database of its own, never the test suite's (which may be in use).
    connection.settings_dict["TEST"]["NAME"] = f"bench_treasury_{os.getpid()}"
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from django.utils import timezone

        from apps.exchange.models import AccountBalance, WalletType
        from apps.funding.balances import treasury_view
        from apps.orgs.models import KrakenAccount, Organization
        from apps.orgs.permissions import Role
        from tests.conftest import verified_client
        from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
        from tests.funding.conftest import set_prices
        from tests.market.conftest import clear_market_keys

        org = cast(Organization, OrganizationFactory(slug="bench-treasury"))
        viewer = MembershipFactory(org=org, role=Role.VIEWER, user=UserFactory())
        master = KrakenAccount.objects.create(
            org=org, label="Master", kind="master", verification_tier="pro"
        )
        accounts = [master] + [
            KrakenAccount.objects.create(
                org=org, label=f"Sub {i}", kind="subaccount", parent=master
            )
            for i in range(args.accounts - 1)
        ]
        assets = [f"T{i:02d}" for i in range(args.assets - 1)] + ["BTC"]
        clear_market_keys()
        set_prices({f"{asset}/USD": Decimal(1 + i) for i, asset in enumerate(assets)})
        settings.MARKET_PRICE_MAX_AGE = 3600
        now = timezone.now()
        AccountBalance.objects.bulk_create(
            AccountBalance(
                account=account,
                asset=asset,
                wallet_type=wallet,
                wallet_id="main" if wallet == WalletType.SPOT else "flexible",
                balance=Decimal("12.5"),
                hold=Decimal("1") if wallet == WalletType.SPOT else Decimal(0),
                source="rest",
                updated_at=now,
            )
            for account in accounts
            for asset in assets
            for wallet in (WalletType.SPOT, WalletType.EARN)
        )
        build = []
        for _ in range(10):
            start = time.perf_counter()
            view = treasury_view(org=org)
            build.append(time.perf_counter() - start)
        client = verified_client(viewer.user)
        url = f"/o/{org.slug}/treasury/"
        client.get(url)  # warm
        times = []
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        per_page = len(queries)
        for _ in range(args.requests):
            start = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - start)
            assert response.status_code == 200
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(
            f"treasury balances: {args.accounts} accounts x {args.assets} assets "
            f"({len(view.totals)} assets in total, value {view.value:.2f} USD)"
        )
        print(f"  treasury_view: p50 {statistics.median(build) * 1000:.1f} ms")
        print(
            f"  page: p50 {statistics.median(times) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"{per_page} SQL queries, {len(response.content) // 1024} KiB"
        )
        clear_market_keys()
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
