"""The Operations page: owners and admins see every unsettled operation with its history and
can ask for a reconciliation; everyone else is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditRecord
from apps.exchange import services
from apps.exchange.models import Kind, Operation, OperationEvent, State
from apps.orgs.models import Membership
from apps.vault.services import credential_create
from tests.factories import master_account
from tests.vault.conftest import KEK_1, new_key_pair

pytestmark = pytest.mark.django_db

ClientFor = Callable[[Membership], Client]


@pytest.fixture
def operation(owner: Membership, settings: Any) -> Operation:
    settings.PORTAL_KEYRING = f"k1:{KEK_1}"
    pair = new_key_pair()
    credential = credential_create(
        membership=owner,
        label="Desk",
        api_key=pair.api_key,
        secret=pair.secret,
        otp=None,
        account=master_account(owner.org),
        use="trading",
        probe=False,
    )
    # Being sent right now: a reconciliation request leaves it to its worker.
    op = Operation.objects.create(
        org=owner.org,
        account=credential.account,
        credential=credential,
        kind=Kind.ADD_ORDER,
        params={"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "1"},
        reference={"cl_ord_id": "6d1b345e-2821-40e2-ad83-4ecb18a06876"},
        state=State.SENDING,
        sent_at=timezone.now(),
        requested_by=owner.user,
    )
    OperationEvent.objects.create(operation=op, to_state=State.PREPARED, message="Prepared")
    OperationEvent.objects.create(
        operation=op, from_state=State.PREPARED, to_state=State.SENDING, message="Sending to Kraken"
    )
    return op


def list_url(op: Operation) -> str:
    return reverse("exchange:operation-list", kwargs={"org": op.org.slug})


def reconcile_url(op: Operation) -> str:
    return reverse("exchange:operation-reconcile", kwargs={"org": op.org.slug, "pk": op.pk})


def test_the_page_refuses_a_post(
    operation: Operation, owner: Membership, client_for: ClientFor
) -> None:
    assert client_for(owner).post(list_url(operation)).status_code == 405


def test_reconcile_refuses_a_get(
    operation: Operation, owner: Membership, client_for: ClientFor
) -> None:
    assert client_for(owner).get(reconcile_url(operation)).status_code == 405


def test_anonymous_visitors_are_sent_to_sign_in(operation: Operation, client: Client) -> None:
    response = client.get(list_url(operation))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
    assert client.post(reconcile_url(operation)).status_code == 302


def test_an_outsider_gets_404(
    operation: Operation, outsider: Membership, client_for: ClientFor
) -> None:
    assert client_for(outsider).get(list_url(operation)).status_code == 404
    assert client_for(outsider).post(reconcile_url(operation)).status_code == 404


@pytest.mark.parametrize("role", ["trader", "treasurer", "approver", "viewer"])
def test_roles_below_admin_get_403(
    operation: Operation, role: str, request: pytest.FixtureRequest, client_for: ClientFor
) -> None:
    member: Membership = request.getfixturevalue(role)
    assert client_for(member).get(list_url(operation)).status_code == 403
    assert client_for(member).post(reconcile_url(operation)).status_code == 403


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_see_unsettled_operations_with_their_history(
    operation: Operation, role: str, request: pytest.FixtureRequest, client_for: ClientFor
) -> None:
    member: Membership = request.getfixturevalue(role)
    response = client_for(member).get(list_url(operation))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="operation-{operation.pk}"' in html
    assert 'data-state="sending"' in html
    assert "Sending to Kraken" in html
    assert "cl_ord_id=6d1b345e-2821-40e2-ad83-4ecb18a06876" in html
    assert "Reconcile now" in html
    assert f"/ws/o/{operation.org.slug}/operations/" in html


def test_the_htmx_request_gets_only_the_list_fragment(
    operation: Operation, owner: Membership, client_for: ClientFor
) -> None:
    response = client_for(owner).get(list_url(operation), headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="operation-list">')
    assert "<html" not in html
    assert f'id="operation-{operation.pk}"' in html


def test_reconcile_now_is_audited_and_answers_the_card(
    operation: Operation, admin: Membership, client_for: ClientFor
) -> None:
    response = client_for(admin).post(reconcile_url(operation), headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<article id="operation-{operation.pk}"')
    assert services.RECONCILE_REQUESTED.format(pk=operation.pk) in html
    record = AuditRecord.objects.get(action="exchange.operation.reconcile_requested")
    assert record.actor_id == admin.user_id


def test_reconcile_now_without_htmx_redirects_to_the_page(
    operation: Operation, owner: Membership, client_for: ClientFor
) -> None:
    response = client_for(owner).post(reconcile_url(operation))
    assert response.status_code == 302
    assert response["Location"] == list_url(operation)


def test_a_settled_operation_cannot_be_reconciled(
    operation: Operation, owner: Membership, client_for: ClientFor
) -> None:
    Operation.objects.filter(pk=operation.pk).update(state=State.DONE)
    response = client_for(owner).post(reconcile_url(operation), headers={"HX-Request": "true"})
    assert response.status_code == 409
    assert services.ALREADY_SETTLED in response.content.decode()
