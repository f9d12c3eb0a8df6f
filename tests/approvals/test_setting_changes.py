"""The organization settings that loosen a safeguard go through `orgs.policy_change`, exactly as
a policy loosening: changing the reporting currency, accepting over-privileged API keys and
turning the 2FA requirement off need a second owner's approval, or for a sole owner a fresh
step-up and a 24-hour delay during which every owner is emailed and may cancel. Tightenings and
the rest of the form apply at once; the settings page says what happens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.approvals import setting_changes
from apps.approvals.models import ApprovalRequest
from apps.approvals.services import approval_cancel, approval_decide, approvals_run_due
from apps.audit.models import AuditRecord
from apps.notifications.models import Notification
from apps.orgs.models import Membership, Organization
from apps.orgs.permissions import Role
from apps.orgs.services.organizations import (
    REQUIRE_2FA_OFF_OWNERS_ONLY,
    SettingsSaved,
    organization_update_settings,
)
from tests.approvals.conftest import stepped_up_client
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

SETTINGS_URL = reverse("orgs:settings", kwargs={"org": "acme"})

# (the setting, what the owner asks for, the value before, the value after)
LOOSENINGS = [
    pytest.param("reporting_currency", {"reporting_currency": "EUR"}, "USD", "EUR", id="currency"),
    pytest.param(
        "allow_overprivileged_keys",
        {"allow_overprivileged_keys": True},
        False,
        True,
        id="overprivileged-keys",
    ),
    pytest.param("require_2fa", {"require_2fa": False}, True, False, id="2fa-off"),
]


@pytest.fixture
def eager_email() -> Iterator[None]:
    """The notification's email task runs here when enqueued (no worker in these tests)."""
    from kraken_portal.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def change(actor: Membership, *, stepped_up: bool = True, **wanted: Any) -> SettingsSaved:
    org = Organization.objects.get(pk=actor.org_id)
    return organization_update_settings(
        org=org,
        actor=actor,
        name=wanted.pop("name", org.name),
        require_2fa=wanted.pop("require_2fa", org.require_2fa),
        stepped_up=stepped_up,
        **wanted,
    )


def value(field: str) -> Any:
    return Organization.objects.values_list(field, flat=True).get(slug="acme")


def second_owner(org: Organization) -> Membership:
    return MembershipFactory(org=org, role=Role.OWNER, user=UserFactory(email="co@acme.test"))


@pytest.mark.parametrize(("field", "wanted", "before", "after"), LOOSENINGS)
def test_with_two_owners_a_loosening_waits_for_the_other_owners_approval(
    owner, committing, field, wanted, before, after
) -> None:
    other = second_owner(owner.org)

    saved = change(owner, **wanted)

    assert saved.held == (
        setting_changes.HELD_FOR_OWNER.format(
            change=setting_changes.change_text(field, before, after)
        ),
    )
    assert value(field) == before
    approval = ApprovalRequest.objects.get(kind="orgs.policy_change")
    assert approval.summary == {"org_setting": field, "from": before, "to": after}
    assert approval.status == ApprovalRequest.Status.PENDING
    assert not AuditRecord.objects.filter(action="organization.settings").exists()
    # The requester cannot approve it; the other owner does, with a fresh step-up.
    with pytest.raises(ValidationError, match="request you made yourself"):
        approval_decide(
            approval=approval,
            actor=owner,
            verdict="approve",
            fingerprint_seen=approval.fingerprint,
            stepped_up=True,
        )
    with committing():
        approval_decide(
            approval=approval,
            actor=other,
            verdict="approve",
            fingerprint_seen=approval.fingerprint,
            stepped_up=True,
        )

    assert value(field) == after
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.EXECUTED
    record = AuditRecord.objects.get(action="organization.settings")
    assert record.detail == {"changes": {field: [before, after]}, "approval": approval.pk}
    assert record.actor_email == owner.user.email


@pytest.mark.parametrize(("field", "wanted", "before", "after"), LOOSENINGS)
def test_a_sole_owners_loosening_waits_24_hours_and_every_owner_is_emailed(
    owner, committing, mailoutbox, eager_email, field, wanted, before, after
) -> None:
    with committing():
        saved = change(owner, **wanted)

    assert saved.held == (
        setting_changes.HELD_24H.format(change=setting_changes.change_text(field, before, after)),
    )
    approval = ApprovalRequest.objects.get(kind="orgs.policy_change")
    assert approval.status == ApprovalRequest.Status.APPROVED
    assert approval.not_before is not None
    assert approval.not_before - timezone.now() > timedelta(hours=23, minutes=59)
    notice = Notification.objects.get(recipient=owner.user, kind="approvals.delayed")
    assert "applies in 24 hours" in notice.title
    [email] = mailoutbox
    assert email.to == [owner.user.email]
    assert "applies in 24 hours" in email.subject
    # Nothing changes before the delay has passed.
    approvals_run_due()
    assert value(field) == before

    ApprovalRequest.objects.filter(pk=approval.pk).update(
        not_before=timezone.now() - timedelta(seconds=1)
    )
    with committing():
        approvals_run_due()

    assert value(field) == after
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.EXECUTED


@pytest.mark.parametrize(("field", "wanted", "before", "after"), LOOSENINGS)
def test_an_owner_cancels_a_sole_owners_delayed_loosening(
    owner, committing, field, wanted, before, after
) -> None:
    change(owner, **wanted)
    approval = ApprovalRequest.objects.get(kind="orgs.policy_change")
    # An owner who joined during the delay may cancel it too.
    other = second_owner(owner.org)

    approval_cancel(approval=approval, actor=other)
    ApprovalRequest.objects.filter(pk=approval.pk).update(not_before=timezone.now())
    with committing():
        approvals_run_due()

    assert value(field) == before
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.CANCELLED


@pytest.mark.parametrize(("field", "wanted", "before", "after"), LOOSENINGS)
def test_a_sole_owners_loosening_needs_a_fresh_step_up(owner, field, wanted, before, after) -> None:
    with pytest.raises(PermissionDenied):
        change(owner, stepped_up=False, **wanted)

    assert value(field) == before
    assert not ApprovalRequest.objects.exists()


def test_a_second_change_of_the_same_setting_is_refused_while_one_waits(owner) -> None:
    change(owner, reporting_currency="EUR")

    with pytest.raises(ValidationError) as caught:
        change(owner, reporting_currency="GBP")

    assert caught.value.message_dict == {
        "reporting_currency": [setting_changes.SETTING_PENDING.format(setting="reporting currency")]
    }
    assert ApprovalRequest.objects.count() == 1


def test_a_setting_changed_meanwhile_voids_the_other_owners_approval(owner) -> None:
    other = second_owner(owner.org)
    change(owner, allow_overprivileged_keys=True)
    approval = ApprovalRequest.objects.get()
    seen = approval.fingerprint
    Organization.objects.filter(pk=owner.org_id).update(allow_overprivileged_keys=True)

    with pytest.raises(ValidationError, match="changed since you opened it"):
        approval_decide(
            approval=approval,
            actor=other,
            verdict="approve",
            fingerprint_seen=seen,
            stepped_up=True,
        )


def test_tightenings_and_the_rest_of_the_form_apply_at_once(owner) -> None:
    Organization.objects.filter(pk=owner.org_id).update(
        require_2fa=False, allow_overprivileged_keys=True
    )

    saved = change(
        owner,
        stepped_up=False,
        name="Acme Capital LLP",
        require_2fa=True,
        allow_overprivileged_keys=False,
        business_timezone="Europe/London",
    )

    assert saved.held == ()
    org = Organization.objects.get(pk=owner.org_id)
    assert (org.name, org.require_2fa, org.allow_overprivileged_keys, org.business_timezone) == (
        "Acme Capital LLP",
        True,
        False,
        "Europe/London",
    )
    assert not ApprovalRequest.objects.exists()


def test_only_an_owner_can_turn_the_2fa_requirement_off_but_an_admin_can_turn_it_on(
    owner, admin
) -> None:
    with pytest.raises(ValidationError) as caught:
        change(admin, require_2fa=False)
    assert caught.value.message_dict == {"require_2fa": [REQUIRE_2FA_OFF_OWNERS_ONLY]}
    assert value("require_2fa") is True

    Organization.objects.filter(pk=owner.org_id).update(require_2fa=False)
    assert change(admin, require_2fa=True).held == ()
    assert value("require_2fa") is True


def test_the_settings_page_says_a_loosening_waits_for_another_owner_and_the_inbox_shows_it(
    owner,
) -> None:
    other = second_owner(owner.org)
    client = stepped_up_client(owner)

    response = client.post(
        SETTINGS_URL, {"name": "Acme Capital", "require_2fa": "on", "reporting_currency": "EUR"}
    )

    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert (
        "Changing the reporting currency from USD to EUR: this loosens a safeguard, so it waits "
        "for another owner&#x27;s approval in the Approvals inbox." in page
    )
    assert "Settings saved." not in page  # nothing else changed
    assert "wait for another owner" in page  # the page explains the rule before saving
    inbox = stepped_up_client(other).get(reverse("approvals:inbox", kwargs={"org": "acme"}))
    assert "Changing the reporting currency from USD to EUR" in inbox.content.decode()
