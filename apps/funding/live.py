"""What the treasury shows live, through each member's header socket (apps.core.realtime):
a withdrawal's or transfer's card wherever it is on a page (the list, its own page), and the
address book's rows. Who receives them is decided here: the organization's current members
(every member may view the treasury, as they may view balances and the audit trail)."""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.template.loader import render_to_string

from apps.core.realtime import member_event_on_commit
from apps.core.redis_clients import redis_client
from apps.funding.models import Destination, Transfer, Withdrawal
from apps.orgs.models import Membership


def withdrawal_element(pk: int) -> str:
    return f"withdrawal-{pk}"


def transfer_element(pk: int) -> str:
    return f"transfer-{pk}"


def destination_element(pk: int) -> str:
    return f"destination-{pk}"


def _audience(org_id: int) -> list[int]:
    return list(Membership.objects.filter(org_id=org_id).values_list("user_id", flat=True))


def _send_withdrawal(pk: int) -> None:
    withdrawal = (
        Withdrawal.objects.select_related(
            "org", "account", "destination", "approval", "requested_by"
        )
        .filter(pk=pk)
        .first()
    )
    if withdrawal is None:
        return
    html = render_to_string(
        "funding/_cards.html#withdrawal-card", {"withdrawal": withdrawal, "oob": True}
    )
    member_event_on_commit(
        org_id=withdrawal.org_id,
        user_ids=_audience(withdrawal.org_id),
        parts=[(withdrawal_element(pk), html.strip())],
    )


def _send_transfer(pk: int) -> None:
    transfer = (
        Transfer.objects.select_related(
            "org", "from_account", "to_account", "approval", "requested_by"
        )
        .filter(pk=pk)
        .first()
    )
    if transfer is None:
        return
    html = render_to_string(
        "funding/_cards.html#transfer-card", {"transfer": transfer, "oob": True}
    )
    member_event_on_commit(
        org_id=transfer.org_id,
        user_ids=_audience(transfer.org_id),
        parts=[(transfer_element(pk), html.strip())],
    )


def _send_destination(pk: int) -> None:
    destination = (
        Destination.objects.select_related("org", "account", "approval").filter(pk=pk).first()
    )
    if destination is None:
        return
    html = render_to_string(
        "funding/_cards.html#destination-row", {"destination": destination, "oob": True}
    )
    member_event_on_commit(
        org_id=destination.org_id,
        user_ids=_audience(destination.org_id),
        parts=[(destination_element(pk), html.strip())],
    )


def withdrawal_changed_on_commit(withdrawal: Withdrawal) -> None:
    """Rendered after commit, from the database: the card shows what committed."""
    transaction.on_commit(partial(_send_withdrawal, withdrawal.pk), robust=True)


def transfer_changed_on_commit(transfer: Transfer) -> None:
    transaction.on_commit(partial(_send_transfer, transfer.pk), robust=True)


def destination_changed_on_commit(destination: Destination) -> None:
    transaction.on_commit(partial(_send_destination, destination.pk), robust=True)


def balances_element(account_id: int) -> str:
    return f"balances-account-{account_id}"


TOTAL_ELEMENT = "treasury-total"


def _send_balances(account_id: int) -> None:
    from apps.funding.balances import account_view, treasury_view
    from apps.orgs.models import KrakenAccount

    account = KrakenAccount.objects.select_related("org").filter(pk=account_id).first()
    if account is None:
        return
    org = account.org
    card = render_to_string(
        "funding/balances.html#account-card",
        {"view": account_view(account=account), "currency": org.reporting_currency, "oob": True},
    )
    total = render_to_string(
        "funding/balances.html#treasury-total", {"treasury": treasury_view(org=org), "oob": True}
    )
    member_event_on_commit(
        org_id=org.pk,
        user_ids=_audience(org.pk),
        parts=[(balances_element(account_id), card.strip()), (TOTAL_ELEMENT, total.strip())],
    )


# A burst of wallet updates (a stream snapshot, a refresh of 50 assets) is sent as one: the
# first change schedules a send this long after, which renders the state then.
BALANCES_COALESCE_SECONDS = 1.0


def balances_send(account_id: int) -> None:
    """Render the account's card and the organization's total now and send them."""
    redis_client().delete(_pending_key(account_id))
    _send_balances(account_id)


def _pending_key(account_id: int) -> str:
    return f"funding:balances-pending:{account_id}"


def _schedule(account_id: int) -> None:
    from apps.funding.tasks import balances_publish_task

    pending = redis_client().set(
        _pending_key(account_id), "1", nx=True, ex=int(BALANCES_COALESCE_SECONDS * 10) + 1
    )
    if pending:
        # The default queue: a burst of withdrawals on `funding` never delays a page update.
        balances_publish_task.apply_async(
            (account_id,), countdown=BALANCES_COALESCE_SECONDS, queue="default"
        )


def balances_changed_on_commit(account_id: int) -> None:
    """A wallet of the account changed: its card and the total, rendered once per burst, to
    every member. The first change of a burst schedules the send; later ones find it pending
    and are included, since the send renders what has committed by then."""
    transaction.on_commit(partial(_schedule, account_id), robust=True)
