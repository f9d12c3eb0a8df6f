"""Blotter and P&L benchmark (issue 11 §5): the blotter page with 100 and with 100,000 orders on
the organization's accounts (goal: within 1.5x, the same number of queries), a deep page and
filtered pages of the large one, and the P&L over 100,000 fills.

Prepared in a scratch database beside DATABASE_URL's (`<name>_blotter_bench`, dropped
afterwards): two organizations, each with a master account and a subaccount, four traders with
a key each; orders are 70 % the portal's (an AddOrder operation with its requester and key) and
30 % external, over ten pairs, a tenth of them open; the large organization also has 100,000
fills. Pages are fetched through Django's test client as a signed-in member (the full view,
templates included); each figure is the median of the runs. Prints a table, never fails.

    .venv/bin/python bench/blotter_bench.py [--orders 100000] [--fills 100000] [--runs 15]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
PAIRS = [
    "XBTUSD",
    "ETHUSD",
    "SOLUSD",
    "XBTEUR",
    "ETHEUR",
    "DOTUSD",
    "ADAUSD",
    "XRPUSD",
    "LTCUSD",
    "LINKUSD",
]
BATCH = 5000


@contextlib.contextmanager
def scratch_database(database_url: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    parts = urlsplit(database_url.replace("postgres://", "postgresql://", 1))
    name = unquote(parts.path.lstrip("/")) + "_blotter_bench"
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(parts._replace(path="/" + quote(name))).replace(
            "postgresql://", "postgres://", 1
        )
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(drop)


def setup_django(database_url: str) -> None:
    keyring = "bench:" + base64.b64encode(hashlib.sha256(b"blotter-bench").digest()).decode()
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "kraken_portal.settings.test",
            "PORTAL_KEYRING": os.environ.get("PORTAL_KEYRING", keyring),
            "LOG_LEVEL": "WARNING",
        }
    )
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--no-input", verbosity=0)


def make_org(slug: str, orders: int, fills: int) -> Any:
    from apps.accounts.models import User
    from apps.exchange.models import ExchangeFill, ExchangeOrder, Kind, Operation, State
    from apps.orgs.models import KrakenAccount, Membership, Organization
    from apps.orgs.permissions import Role
    from apps.vault.services import credential_create

    rng = random.Random(slug)
    org = Organization.objects.create(name=f"Bench {slug}", slug=slug, require_2fa=False)
    master = KrakenAccount.objects.create(
        org=org, label="Main", kind="master", verification_tier="pro"
    )
    sub = KrakenAccount.objects.create(org=org, label="Arbitrage", kind="subaccount", parent=master)
    accounts = [master, sub]
    viewer = User.objects.create_user(email=f"viewer@{slug}.test", password="x" * 20)
    Membership.objects.create(org=org, user=viewer, role=Role.VIEWER)
    traders = []
    for i in range(4):
        user = User.objects.create_user(email=f"trader{i}@{slug}.test", password="x" * 20)
        member = Membership.objects.create(org=org, user=user, role=Role.TRADER)
        key = credential_create(
            membership=member,
            label=f"trader{i} key",
            api_key=base64.b64encode(os.urandom(42)).decode(),
            secret=base64.b64encode(os.urandom(64)).decode(),
            otp=None,
            account=accounts[i % 2],
            use="trading",
            probe=False,
        )
        traders.append((user, key))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    step = timedelta(days=330) / max(orders, 1)
    made = 0
    order_ids: list[int] = []
    while made < orders:
        n = min(BATCH, orders - made)
        ops, rows = [], []
        for i in range(made, made + n):
            user, key = traders[i % 4]
            portal = rng.random() < 0.7
            pair = PAIRS[i % len(PAIRS)]
            side = "buy" if rng.random() < 0.5 else "sell"
            operation = (
                Operation(
                    org=org,
                    account=key.account,
                    credential=key,
                    kind=Kind.ADD_ORDER,
                    params={"pair": pair},
                    state=State.DONE,
                    requested_by=user,
                )
                if portal
                else None
            )
            ops.append(operation)
            rows.append(
                ExchangeOrder(
                    account=key.account if portal else accounts[i % 2],
                    txid=f"O{slug[:3].upper()}{i:08d}",
                    pair=pair,
                    side=side,
                    order_type="limit",
                    status="open" if rng.random() < 0.1 else rng.choice(["closed", "canceled"]),
                    vol=Decimal("0.5"),
                    vol_exec=Decimal("0.5"),
                    price=Decimal(50000 + i % 1000),
                    avg_price=Decimal(50000 + i % 1000),
                    cost=Decimal(25000),
                    fee=Decimal("10"),
                    opened_at=start + step * i,
                )
            )
        Operation.objects.bulk_create([op for op in ops if op is not None])
        for op, row in zip(ops, rows, strict=True):
            row.operation = op
        ExchangeOrder.objects.bulk_create(rows)
        order_ids.extend(row.pk for row in rows)
        made += n
    made = 0
    fstep = timedelta(days=330) / max(fills, 1)
    while made < fills:
        n = min(BATCH, fills - made)
        batch = []
        for i in range(made, made + n):
            order_pk = order_ids[i % len(order_ids)]
            side = "buy" if (i // 3) % 2 == 0 else "sell"
            batch.append(
                ExchangeFill(
                    account=accounts[i % 2],
                    trade_id=f"T{slug[:3].upper()}{i:08d}",
                    order_id=order_pk,
                    pair=PAIRS[i % len(PAIRS)],
                    side=side,
                    price=Decimal(50000 + (i % 2000)),
                    qty=Decimal("0.1"),
                    cost=Decimal(5000),
                    fees=[{"asset": "USD", "qty": "1.3"}],
                    liquidity="t",
                    executed_at=start + fstep * i,
                )
            )
        ExchangeFill.objects.bulk_create(batch)
        made += n
    return org, viewer, traders


def measure(fn: Callable[[], Any], runs: int) -> tuple[float, int]:
    """(median milliseconds, queries per run)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fn()  # warm: caches, the session's first request
    times, queries = [], 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            fn()
            times.append((time.perf_counter() - began) * 1000)
        queries = len(captured)
    return statistics.median(times), queries


def get(client: Any, url: str, params: dict[str, str] | None = None) -> Callable[[], Any]:
    def call() -> Any:
        response = client.get(url, params or {})
        assert response.status_code == 200, (url, response.status_code)
        return response

    return call


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--fills", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        print("blotter_bench needs a PostgreSQL DATABASE_URL; skipped.")
        return 0
    with scratch_database(database_url) as url:
        setup_django(url)
        return run(args)


def run(args: argparse.Namespace) -> int:
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from apps.trading import selectors_blotter as blotter
    from apps.trading.pnl import pnl_report

    began = time.perf_counter()
    small, small_viewer, _ = make_org("small", 100, 100)
    large, large_viewer, traders = make_org("large", args.orders, args.fills)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"prepared {args.orders:,} orders and {args.fills:,} fills "
        f"in {time.perf_counter() - began:.0f} s",
        flush=True,
    )

    def client_for(user: Any) -> Any:
        client = Client()
        client.force_login(user)
        return client

    rows: list[tuple[str, float, int]] = []

    def add(label: str, fn: Callable[[], Any]) -> None:
        ms, queries = measure(fn, args.runs)
        rows.append((label, ms, queries))
        print(f"  {label:<52} {ms:8.1f} ms  {queries:3d} queries", flush=True)

    for org, viewer, size in ((small, small_viewer, 100), (large, large_viewer, args.orders)):
        client = client_for(viewer)
        history = reverse("trading:blotter-history", kwargs={"org": org.slug})
        add(f"history page 1, {size:,} orders", get(client, history))
        add(
            f"open orders page 1, {size:,} orders",
            get(client, reverse("trading:blotter-open", kwargs={"org": org.slug})),
        )
        add(
            f"fills page 1, {size:,} orders",
            get(client, reverse("trading:blotter-fills", kwargs={"org": org.slug})),
        )
    client = client_for(large_viewer)
    history = reverse("trading:blotter-history", kwargs={"org": large.slug})
    accounts = blotter.org_accounts(org=large)
    middle = blotter.orders_queryset(
        accounts=accounts, view="history", filters=blotter.BlotterFilters()
    )[args.orders // 2]
    cursor_text = blotter.Cursor(at=middle.opened_at, pk=middle.pk).encode()
    add("history, a page half-way down (keyset)", get(client, history, {"after": cursor_text}))
    add("history, filtered by member", get(client, history, {"member": str(traders[1][0].pk)}))
    add("history, filtered by pair BTC/USD", get(client, history, {"pair": "BTC/USD"}))
    add(
        "history, filtered by key and side",
        get(client, history, {"key": str(traders[2][1].pk), "side": "sell"}),
    )
    add("history, external orders", get(client, history, {"member": "external"}))

    # The database's share: each page's query, as PostgreSQL runs it (EXPLAIN ANALYZE).
    from apps.trading.selectors_blotter import _newest

    def explain(label: str, filters: Any, view: str = "history") -> None:
        queryset = blotter.orders_queryset(accounts=accounts, view=view, filters=filters)
        ids = [account.pk for account in accounts]
        branches = blotter._branches(ids, filters)
        plan = _newest(queryset, branches, "opened_at", None, blotter.PAGE_SIZE).explain(
            analyze=True
        )
        took = next(line for line in plan.splitlines() if line.startswith("Execution Time"))
        print(f"  SQL only: {label:<42} {took}", flush=True)

    explain("history page 1", blotter.BlotterFilters())
    explain("open orders page 1", blotter.BlotterFilters(), view="open")
    explain("history by member", blotter.BlotterFilters(member=traders[1][0].pk))
    explain("history by pair", blotter.BlotterFilters(pair="BTC/USD"))
    explain("history external", blotter.BlotterFilters(member="external"))

    def fixed(asset: str) -> Decimal:
        return Decimal(50000) if asset not in ("EUR",) else Decimal("1.1")

    def pnl() -> None:
        pnl_report(accounts=accounts, currency="USD", rate=fixed)

    last_fill = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=330)

    def pnl_day() -> None:
        pnl_report(
            accounts=accounts,
            currency="USD",
            rate=fixed,
            since=last_fill - timedelta(days=1),
            until=last_fill + timedelta(days=1),
        )

    add(f"P&L walk over {args.fills:,} fills, all time (fixed rates)", pnl)
    add(f"P&L walk over {args.fills:,} fills, one day's window", pnl_day)
    from apps.trading.pnl import pnl_invalidate

    pnl_url = reverse("trading:pnl", kwargs={"org": large.slug})

    def cold_pnl_page() -> Any:
        pnl_invalidate(org_id=large.pk)  # as after a new fill: the walk runs again
        return get(client, pnl_url)()

    add(f"P&L page over {args.fills:,} fills, after a change", cold_pnl_page)
    add(
        f"P&L page over {args.fills:,} fills, walk cached",
        get(client, reverse("trading:pnl", kwargs={"org": large.slug})),
    )

    home = reverse("orgs:dashboard", kwargs={"org": large.slug})
    add("home page with the desk panel, walk cached", get(client, home))

    # The headline, measured interleaved (small, large, small, large...) so that the shared
    # machine's load, which moves by tens of percent over a minute, falls on both alike.
    small_page = get(
        client_for(small_viewer), reverse("trading:blotter-history", kwargs={"org": small.slug})
    )
    large_page = get(client, history)
    small_page(), large_page()
    small_times: list[float] = []
    large_times: list[float] = []
    for _ in range(args.runs * 2):
        for fn, times in ((small_page, small_times), (large_page, large_times)):
            began = time.perf_counter()
            fn()
            times.append((time.perf_counter() - began) * 1000)
    small_ms, large_ms = statistics.median(small_times), statistics.median(large_times)
    print()
    print(
        f"history page 1, interleaved: {small_ms:.1f} ms at 100 orders, {large_ms:.1f} ms at "
        f"{args.orders:,} orders: {large_ms / small_ms:.2f}x (goal <= 1.5x); "
        f"queries {rows[0][2]} vs {rows[3][2]}"
    )
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
