"""Every approvals view: wrong method, anonymous, outsider (404), the normal case, the htmx
fragment, and refusals shown as messages rather than errors."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.approvals import services
from apps.approvals.models import ApprovalRequest
from tests.approvals.conftest import stepped_up_client, transfer

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def url(name: str, **kwargs: object) -> str:
    return reverse(f"approvals:{name}", kwargs={"org": "acme", **kwargs})


@pytest.fixture
def approval(owner, approver, treasurer) -> ApprovalRequest:
    return transfer(treasurer, "10")


def all_urls(approval: ApprovalRequest) -> list[tuple[str, str]]:
    return [
        ("get", url("inbox")),
        ("get", url("request-detail", pk=approval.pk)),
        ("post", url("request-decide", pk=approval.pk)),
        ("post", url("request-cancel", pk=approval.pk)),
        ("get", url("policy-list")),
        ("get", url("policy-edit", kind="orgs.role_grant")),
    ]


def test_anonymous_visitors_are_sent_to_sign_in(approval) -> None:
    for method, address in all_urls(approval):
        response = getattr(Client(), method)(address)
        assert response.status_code == 302, address
        assert response["Location"].startswith(reverse("accounts:login")), address


def test_outsiders_get_404(approval, outsider) -> None:
    client = stepped_up_client(outsider)
    for method, address in all_urls(approval):
        assert getattr(client, method)(address).status_code == 404, address


def test_a_request_of_another_organization_is_404(approval, outsider) -> None:
    other = reverse("approvals:request-detail", kwargs={"org": "other", "pk": approval.pk})

    assert stepped_up_client(outsider).get(other).status_code == 404


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("inbox", "post"),
        ("request-detail", "post"),
        ("request-decide", "get"),
        ("request-cancel", "get"),
    ],
)
def test_a_wrong_method_is_refused(approval, owner, name, method) -> None:
    address = url(name) if name == "inbox" else url(name, pk=approval.pk)

    assert getattr(stepped_up_client(owner), method)(address).status_code == 405


def test_the_inbox_lists_what_waits_for_me_and_serves_a_fragment(approval, approver) -> None:
    client = stepped_up_client(approver)

    page = client.get(url("inbox")).content.decode()
    fragment = client.get(url("inbox"), **HTMX).content.decode()

    assert "Send 0.1 BTC to bc1-alpha" in page
    assert 'id="approvals-count"' in page
    assert 'data-waiting="1"' in page
    assert fragment.lstrip().startswith('<div id="approval-inbox">')
    assert "<html" not in fragment


def test_the_requester_does_not_find_their_own_request_waiting(approval, treasurer) -> None:
    page = stepped_up_client(treasurer).get(url("inbox")).content.decode()

    assert f'id="waiting-{approval.pk}"' not in page


def test_the_request_page_shows_the_timeline_and_the_decision_form(approval, approver) -> None:
    client = stepped_up_client(approver)

    page = client.get(url("request-detail", pk=approval.pk)).content.decode()
    fragment = client.get(url("request-detail", pk=approval.pk), **HTMX).content.decode()

    assert f'id="approval-timeline-{approval.pk}"' in page
    assert 'value="approve"' in page
    assert approval.fingerprint in page
    assert fragment.lstrip().startswith(f'<section id="approval-timeline-{approval.pk}"')


def test_the_requester_sees_no_decision_form(approval, treasurer) -> None:
    page = stepped_up_client(treasurer).get(url("request-detail", pk=approval.pk))

    assert 'value="approve"' not in page.content.decode()


def test_deciding_through_the_page_and_a_refusal_as_a_message(
    approval, approver, treasurer, committing
) -> None:
    data = {"verdict": "approve", "fingerprint": approval.fingerprint}
    refused = stepped_up_client(treasurer).post(
        url("request-decide", pk=approval.pk), data, follow=True
    )
    assert services.SELF_APPROVAL in refused.content.decode()

    with committing():
        response = stepped_up_client(approver).post(url("request-decide", pk=approval.pk), data)

    assert response.status_code == 302
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.EXECUTED


def test_a_garbled_decision_is_a_400(approval, approver) -> None:
    response = stepped_up_client(approver).post(
        url("request-decide", pk=approval.pk), {"verdict": "maybe"}
    )

    assert response.status_code == 400


def test_a_decision_without_a_fresh_step_up_goes_to_the_step_up_page(
    approval, approver, client_for
) -> None:
    data = {"verdict": "approve", "fingerprint": approval.fingerprint}
    response = client_for(approver).post(url("request-decide", pk=approval.pk), data)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:step-up"))
    assert not approval.decisions.exists()


def test_the_requester_cancels_through_the_page(approval, treasurer) -> None:
    response = stepped_up_client(treasurer).post(url("request-cancel", pk=approval.pk))

    assert response.status_code == 302
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.CANCELLED


@pytest.mark.parametrize("who", ["admin", "trader"])
def test_only_owners_edit_policies(request, who) -> None:
    member = request.getfixturevalue(who)
    response = stepped_up_client(member).get(url("policy-edit", kind="orgs.role_grant"))

    assert response.status_code == 403


def test_an_unknown_policy_kind_is_404(owner) -> None:
    assert stepped_up_client(owner).get(url("policy-edit", kind="no.such")).status_code == 404


def test_the_header_counts_what_waits_for_this_member_in_this_organization(
    owner, approver, treasurer
) -> None:
    """The header's counts come from one query (kraken_portal.context_processors): what this
    member may still decide here, not what they decided, asked for, or what waits elsewhere."""
    from tests.factories import MembershipFactory

    first = transfer(treasurer, "10", name="t1")
    transfer(treasurer, "20", name="t2")
    elsewhere = MembershipFactory(role="treasurer")
    MembershipFactory(org=elsewhere.org, user=approver.user, role="approver")
    transfer(elsewhere, "30", name="t3")
    client = stepped_up_client(approver)

    assert client.get(url("inbox")).context["approvals_waiting"] == 2
    services.approval_decide(
        approval=first,
        actor=approver,
        verdict="approve",
        fingerprint_seen=first.fingerprint,
        stepped_up=True,
    )
    assert client.get(url("inbox")).context["approvals_waiting"] == 1
    # The requester decides none of their own; an owner may decide the open one.
    assert stepped_up_client(treasurer).get(url("inbox")).context["approvals_waiting"] == 0
    assert stepped_up_client(owner).get(url("inbox")).context["approvals_waiting"] == 1
    # Notified here of both requests; the other organization's notifications are not counted.
    from apps.notifications.models import Notification

    unread = Notification.objects.filter(recipient=approver.user, read_at__isnull=True)
    assert unread.exclude(org=approver.org).exists()
    assert client.get(url("inbox")).context["notification_unread"] == (
        unread.filter(org=approver.org).count()
    )
    assert unread.filter(org=approver.org).count() == 2
