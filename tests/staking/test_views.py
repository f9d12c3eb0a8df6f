"""The staking pages: who may see and do what (the role matrix), the htmx fragments, and the
form showing the service's messages next to its fields."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.orgs.models import Membership
from apps.orgs.permissions import Role
from apps.staking.models import StakeRequest
from tests.approvals.conftest import stepped_up_client
from tests.conftest import verified_client
from tests.staking.conftest import DOT_AUTO, DOT_FLEX, EarnDesk

pytestmark = pytest.mark.django_db

ROLES = list(Role.values)
VIEW_PAGES = ["staking:overview", "staking:strategies"]


def url(name: str, membership: Membership) -> str:
    return reverse(name, kwargs={"org": membership.org.slug})


@pytest.mark.parametrize("name", VIEW_PAGES)
@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_the_staking_pages(
    name: str, role: str, request: pytest.FixtureRequest
) -> None:
    membership = request.getfixturevalue(role)
    response = verified_client(membership.user).get(url(name, membership))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("owner", 200),
        ("treasurer", 200),
        ("admin", 403),
        ("trader", 403),
        ("approver", 403),
        ("viewer", 403),
    ],
)
def test_only_treasurers_and_owners_open_the_request_form(
    role: str, status: int, request: pytest.FixtureRequest
) -> None:
    membership = request.getfixturevalue(role)
    response = stepped_up_client(membership).get(url("staking:request-create", membership))
    assert response.status_code == status


@pytest.mark.parametrize("name", [*VIEW_PAGES, "staking:request-create"])
def test_outsiders_get_404_and_anonymous_visitors_sign_in(
    name: str, outsider: Membership, owner: Membership
) -> None:
    assert verified_client(outsider.user).get(url(name, owner)).status_code == 404
    response = Client().get(url(name, owner))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_the_pages_refuse_the_wrong_method(owner: Membership) -> None:
    client = stepped_up_client(owner)
    assert client.post(url("staking:overview", owner)).status_code == 405
    assert client.post(url("staking:strategies", owner)).status_code == 405
    assert client.get(url("staking:request-cancel", owner)).status_code == 405


def test_the_request_form_asks_for_a_fresh_step_up(treasurer: Membership) -> None:
    response = verified_client(treasurer.user).get(url("staking:request-create", treasurer))
    assert response.status_code == 302
    assert reverse("accounts:step-up") in response["Location"]


def test_without_a_read_key_the_pages_say_so(owner: Membership) -> None:
    from tests.factories import master_account

    master_account(owner.org)
    response = verified_client(owner.user).get(url("staking:strategies", owner))
    assert "has no designated key the portal may read Earn with" in response.content.decode()


def test_the_catalogue_shows_lock_types_restrictions_and_filters(
    desk: EarnDesk, viewer: Membership
) -> None:
    client = verified_client(viewer.user)
    page = client.get(url("staking:strategies", viewer)).content.decode()
    assert f'data-strategy="{DOT_FLEX}"' in page
    assert "Auto-earn" in page
    assert "No: auto-earn" in page
    assert "Allocate</a>" not in page  # a viewer may not ask
    fragment = client.get(
        url("staking:strategies", viewer),
        {"asset": "DOT", "lock_type": "bonded"},
        headers={"HX-Request": "true"},
    ).content.decode()
    assert (
        fragment.startswith('\n<div id="strategy-table">') or 'id="strategy-table"' in fragment[:80]
    )
    assert "<html" not in fragment
    assert 'data-strategy="ESDQCOL-WTZEU-NU55QF"' in fragment
    assert f'data-strategy="{DOT_FLEX}"' not in fragment


def test_a_form_error_shows_next_to_the_amount(
    desk: EarnDesk, treasurer: Membership, earn_prices: None
) -> None:
    response = stepped_up_client(treasurer).post(
        url("staking:request-create", treasurer),
        {
            "account": desk.account.pk,
            "strategy_id": DOT_FLEX,
            "direction": "allocate",
            "amount": "0.001",
        },
    )
    assert response.status_code == 400
    assert "The minimum for this strategy is 0.01 DOT." in response.content.decode()
    assert not StakeRequest.objects.exists()


def test_auto_earn_is_refused_by_the_form_too(
    desk: EarnDesk, treasurer: Membership, earn_prices: None
) -> None:
    response = stepped_up_client(treasurer).post(
        url("staking:request-create", treasurer),
        {
            "account": desk.account.pk,
            "strategy_id": DOT_AUTO,
            "direction": "allocate",
            "amount": "5",
        },
    )
    assert response.status_code == 400
    assert "Auto-earn strategies cannot be allocated to" in response.content.decode()


def test_a_request_is_sent_and_shown_on_the_overview(
    desk: EarnDesk, treasurer: Membership, viewer: Membership, earn_prices: None
) -> None:
    response = stepped_up_client(treasurer).post(
        url("staking:request-create", treasurer),
        {
            "account": desk.account.pk,
            "strategy_id": DOT_FLEX,
            "direction": "allocate",
            "amount": "3",
        },
    )
    assert response.status_code == 302
    row = StakeRequest.objects.get()
    assert row.amount == Decimal(3)
    page = verified_client(viewer.user).get(url("staking:overview", viewer)).content.decode()
    assert f'id="stake-request-{row.pk}"' in page
    assert 'data-status="sending"' in page


def test_cancel_needs_a_request_and_refuses_someone_elses(
    desk: EarnDesk,
    treasurer: Membership,
    owner: Membership,
    earn_prices: None,
    django_user_model: Any,
) -> None:
    client = stepped_up_client(treasurer)
    assert client.post(url("staking:request-cancel", treasurer)).status_code == 400
    client.post(
        url("staking:request-create", treasurer),
        {
            "account": desk.account.pk,
            "strategy_id": DOT_FLEX,
            "direction": "allocate",
            "amount": "3",
        },
    )
    client.post(
        url("staking:request-create", treasurer),
        {
            "account": desk.account.pk,
            "strategy_id": DOT_FLEX,
            "direction": "allocate",
            "amount": "4",
        },
    )
    queued = StakeRequest.objects.get(status="queued")
    response = stepped_up_client(owner).post(
        url("staking:request-cancel", owner), {"request_id": queued.pk}
    )
    assert response.status_code == 302  # an owner may cancel anyone's
    queued.refresh_from_db()
    assert queued.status == "cancelled"
