"""Exchange fixtures: a sandbox account family (master with balances, a subaccount, a
withdrawal address) and the owner's stored key for it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from apps.exchange.hooks import operation_hooks_clear
from apps.exchange.key_check import credential_check
from apps.exchange.models import queue_for
from apps.orgs.models import Membership
from apps.vault.models import Credential
from apps.vault.policy import ALLOWED
from apps.vault.services import credential_create, credential_test
from kraken_portal.celery import app
from tests.factories import master_account
from tests.vault.conftest import KEK_1

DOT_STRATEGY = "ESRFUO3-Q62XD-WIOIL7"  # the spec's instant DOT strategy (sandbox catalogue)
WITHDRAW_KEY = "cold-wallet"
BALANCES = {"USD": "500000", "XBT": "5", "DOT": "1000", "ETH": "10"}


@dataclass(frozen=True)
class Desk:
    account_id: str
    iiban: str
    sub_account_id: str
    sub_iiban: str
    api_key: str
    secret: str
    credential: Credential  # the trading key
    funding: Credential  # the funding key (withdrawals, transfers, Earn)
    # A second key on the account, for the tests' own look at it (its own nonce sequence).
    look_key: str
    look_secret: str

    def credential_for(self, kind: str) -> Credential:
        return self.credential if queue_for(kind) == "orders" else self.funding

    def look(self, sandbox: Any, method: str, params: dict[str, Any] | None = None) -> Any:
        answer = sandbox.private(self.look_key, self.look_secret, method, params or {})
        assert not answer.get("error"), answer
        return answer["result"]


@pytest.fixture
def exchange_sandbox(sandbox: Any, settings: Any) -> Iterator[Any]:
    """The session's sandbox with the client aimed at it, no faults, short retries, and the
    reconciler's spacing shortened (two looks, half a second apart) so tests run quickly."""
    settings.KRAKEN_API_URL = sandbox.url
    settings.KRAKEN_RETRY_BASE_DELAY = 0.02
    settings.KRAKEN_RETRY_MAX_DELAY = 0.1
    settings.KRAKEN_HTTP_TIMEOUT = 5
    settings.EXCHANGE_NOT_PLACED_MISSES = 2
    settings.EXCHANGE_MISS_SPACING = 0.5
    settings.PORTAL_KEYRING = f"k1:{KEK_1}"
    sandbox.clear_faults()
    sandbox.set_status("online")
    yield sandbox
    sandbox.clear_faults()
    sandbox.set_status("online")


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Tasks enqueued on commit run at once in this process (no worker): the in-process
    tests drive send and reconcile themselves and must not race a session worker."""
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _no_hooks_left() -> Iterator[None]:
    yield
    operation_hooks_clear()


def _store(membership: Membership, account: Any, api_key: str, secret: str, use: str) -> Credential:
    """Store a desk key and check it with the real permission probe, as a key must be checked
    before it may trade or move funds (apps/vault/services.py)."""
    credential = credential_create(
        membership=membership,
        label=f"Desk {use} {api_key[:6]}",
        api_key=api_key,
        secret=secret,
        otp=None,
        account=account,
        use=use,
        probe=False,
    )
    credential_test(credential=credential)
    credential_check(credential_id=credential.pk)  # the worker's task body, run here
    credential.refresh_from_db()
    return credential


def _permissions(use: str) -> list[str]:
    """What the portal allows a key of this use to hold: nothing that would get it refused."""
    return sorted(str(permission) for permission in ALLOWED[use])


def make_desk(sandbox: Any, membership: Membership) -> Desk:
    account_id = sandbox.create_account(BALANCES, tier="pro")
    iiban = sandbox.account(account_id)["iiban"]
    sub = sandbox.create_subaccount_info(account_id, username=f"sub-{secrets.token_hex(4)}")
    sandbox.add_withdraw_address(account_id, "XBT", WITHDRAW_KEY, "bc1qportaltestaddress")
    api_key, secret = sandbox.create_key(account_id, permissions=_permissions("trading"))
    funding_key, funding_secret = sandbox.create_key(
        account_id, permissions=_permissions("funding")
    )
    look_key, look_secret = sandbox.create_key(account_id)
    # The portal's record of that Kraken account (the sandbox account is on the pro tier).
    account = master_account(membership.org, tier="pro")
    credential = _store(membership, account, api_key, secret, "trading")
    funding = _store(membership, account, funding_key, funding_secret, "funding")
    return Desk(
        account_id=account_id,
        iiban=iiban,
        sub_account_id=str(sub["account_id"]),
        sub_iiban=str(sub["iiban"]),
        api_key=api_key,
        secret=secret,
        credential=credential,
        funding=funding,
        look_key=look_key,
        look_secret=look_secret,
    )


@pytest.fixture
def desk(exchange_sandbox: Any, owner: Membership) -> Desk:
    return make_desk(exchange_sandbox, owner)
