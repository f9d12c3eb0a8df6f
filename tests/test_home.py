"""Home: each member's first screen says what needs them now, shows their markets, the feed's
state and recent activity for their role; staff see the onboarding queue."""

from __future__ import annotations

import time
from collections.abc import Iterator
from html import unescape
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import Client
from django.urls import reverse

from apps.audit.services import audit_record
from apps.market.models import WatchlistItem
from apps.market.store import FEEDER_KEY, dumps, state_key
from apps.vault.models import Credential
from apps.vault.services import credential_create
from kraken_portal.dashboard import ONBOARDING_WAITING, TWO_FACTOR_OFF_MANAGER
from tests.conftest import verified_client
from tests.factories import UserFactory, master_account
from tests.orgs.test_onboarding import APPLY, application_data
from tests.vault.conftest import KEK_1, new_key_pair

pytestmark = pytest.mark.django_db

HOME = reverse("core:home")
DASHBOARD = reverse("orgs:dashboard", kwargs={"org": "acme"})
SYMBOL = "HOMETEST/USD"  # a symbol no feeder publishes, so the test owns its keys


@pytest.fixture
def store() -> Iterator[redis.Redis[bytes]]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.delete(state_key(SYMBOL), FEEDER_KEY)


def page(client: Client, url: str = DASHBOARD) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return unescape(response.content.decode())


def test_staff_without_an_organization_see_the_onboarding_queue(db: Any) -> None:
    Client().post(APPLY, application_data(country="DE"))
    staff = verified_client(UserFactory(email="reviewer@kraken.test", is_staff=True))
    html = page(staff, HOME)
    assert "Waiting for review" in html
    assert "Northwind Capital" in html
    assert "Germany" in html
    assert "not a member of any organization" not in html


def test_a_person_without_an_organization_is_told_what_to_do_next(db: Any) -> None:
    html = page(verified_client(UserFactory(email="new@example.test")), HOME)
    assert "Ask your organization's owner or an administrator to invite you" in html
    assert 'href="/onboarding/apply/"' in html


def test_a_staff_member_of_an_organization_sees_the_queue_waiting_on_its_home(owner) -> None:
    owner.user.is_staff = True
    owner.user.save(update_fields=["is_staff"])
    Client().post(APPLY, application_data())
    html = page(verified_client(owner.user))
    assert ONBOARDING_WAITING.format(count=1, plural="") in html


def test_an_owner_without_2fa_is_asked_to_set_it_up_first(owner) -> None:
    client = Client()
    client.force_login(owner.user)
    org = owner.org
    org.require_2fa = False
    org.save(update_fields=["require_2fa"])
    html = page(client)
    assert TWO_FACTOR_OFF_MANAGER.format(role="owner") in html
    assert f'href="{reverse("accounts:two-factor-setup")}"' in html


def test_a_refused_key_needs_its_owner(trader, client_for, store_key_for_home) -> None:
    credential = store_key_for_home(trader)
    Credential.objects.filter(pk=credential.pk).update(
        status="refused", status_reason="It can withdraw.", revoked_at=credential.created_at
    )
    html = page(client_for(trader))
    assert "Your API key “Desk BTC” was refused: It can withdraw." in html


@pytest.fixture
def store_key_for_home(settings: Any) -> Any:
    settings.PORTAL_KEYRING = f"k1:{KEK_1}"

    def store(membership: Any) -> Credential:
        pair = new_key_pair()
        return credential_create(
            membership=membership,
            label="Desk BTC",
            api_key=pair.api_key,
            secret=pair.secret,
            otp=None,
            account=master_account(membership.org),
            use="trading",
            probe=False,
        )

    return store


def test_nothing_waiting_says_so_and_offers_a_next_step(viewer, client_for, store) -> None:
    html = page(client_for(viewer))
    assert "Nothing is waiting for you." in html
    assert "Your watchlist is empty. Star the pairs you follow" in html


def test_the_watchlist_shows_prices_and_the_feed_its_state(viewer, client_for, store) -> None:
    WatchlistItem.objects.create(user=viewer.user, symbol=SYMBOL)
    state = {
        "symbol": SYMBOL,
        "slug": "HOMETEST-USD",
        "price_decimals": 2,
        "qty_decimals": 8,
        "ticker": {"last": "1234.5", "bid": "1234.4", "ask": "1234.6", "change_pct": "-1.25"},
        "candles": [],
    }
    store.set(state_key(SYMBOL), dumps(state))
    client = client_for(viewer)
    assert "Stale" in page(client)  # no feeder has reported
    store.hset(FEEDER_KEY, mapping={"updated_at": str(time.time())})
    html = page(client)
    assert "HOMETEST/USD" in html
    assert "1,234.50" in html
    assert "-1.25%" in html
    assert "Live" in html


def test_recent_activity_follows_the_role(owner, trader, viewer, client_for, store) -> None:
    audit_record(action="membership.role_change", actor=owner, target=trader, detail={"role": "x"})
    audit_record(action="vault.credential.revoke", actor=viewer, detail={})
    owners = page(client_for(owner))
    assert "Recent activity" in owners
    assert "viewer@acme.test" in owners  # who did it, for those who oversee
    assert "API key revoked" in owners
    traders = page(client_for(trader))
    assert "Your recent activity" in traders
    assert "Role changed" in traders  # done to them
    assert "API key revoked" not in traders  # someone else's


def test_home_lists_what_waits_for_my_approval_and_nothing_for_others(
    owner: Any, admin: Any, viewer: Any, trader: Any, client_for: Any
) -> None:
    from apps.approvals.role_grants import role_grant_gate

    assert "Nothing waits for your approval" in page(client_for(owner))
    role_grant_gate(actor=admin, role="trader", member=viewer, email=None, request=None)
    html = page(client_for(owner))
    assert "Waiting for your approval" in html
    assert f"asked by {admin.user.email}" in html
    assert "Nothing waits for your approval" not in html
    # The admin asked (never their own approver) and a trader may not decide role grants.
    assert "Nothing waits for your approval" in page(client_for(admin))
    assert "Nothing waits for your approval" in page(client_for(trader))


def test_home_says_krakens_own_status(owner: Any, client_for: Any, store: Any) -> None:
    from apps.market.store import SYSTEM_STATUS_KEY

    now = time.time()
    store.hset(
        SYSTEM_STATUS_KEY, mapping={"status": "maintenance", "since": now, "received_at": now}
    )
    try:
        html = page(client_for(owner))
        assert "Maintenance" in html
        assert "no order can be placed or cancelled" in html
        store.hset(
            SYSTEM_STATUS_KEY, mapping={"status": "online", "since": now, "received_at": now}
        )
        assert "Maintenance" not in page(client_for(owner))
    finally:
        store.delete(SYSTEM_STATUS_KEY)
