"""Every notification view: wrong method, anonymous, outsider, the normal case, the fragment."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.notifications.models import Notification, NotificationPreference
from apps.notifications.services import notify
from apps.notifications.views import PREFERENCES_SAVED
from tests.notifications.conftest import KIND

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def url(name: str, **kwargs: object) -> str:
    return reverse(f"notifications:{name}", kwargs={"org": "acme", **kwargs})


def ping(member, title: str = "Ping") -> Notification:
    [row] = notify(org=member.org, user_ids=[member.user_id], kind=KIND, title=title)
    return row


def test_the_centre_lists_only_my_notifications_and_the_header_counts_them(
    viewer, owner, client_for
) -> None:
    ping(viewer, "For the viewer")
    ping(owner, "For the owner")

    body = client_for(viewer).get(url("list")).content.decode()

    assert "For the viewer" in body
    assert "For the owner" not in body
    assert 'id="notification-badge"' in body
    assert 'data-unread="1"' in body
    assert "/ws/o/acme/live/" in body


def test_the_centre_serves_its_list_as_a_fragment_to_htmx(viewer, client_for) -> None:
    ping(viewer, "Fragment ping")

    body = client_for(viewer).get(url("list"), **HTMX).content.decode()

    assert body.lstrip().startswith('<section id="notification-list"')
    assert "<html" not in body
    assert "Fragment ping" in body


@pytest.mark.parametrize(
    ("name", "method"),
    [("list", "post"), ("read-all", "get"), ("preferences", "put")],
)
def test_a_wrong_method_is_refused(viewer, client_for, name, method) -> None:
    response = getattr(client_for(viewer), method)(url(name))

    assert response.status_code == 405


def test_reading_is_post_only(viewer, client_for) -> None:
    row = ping(viewer)

    assert client_for(viewer).get(url("read", pk=row.pk)).status_code == 405


@pytest.mark.parametrize("name", ["list", "preferences"])
def test_anonymous_visitors_are_sent_to_sign_in(db, org, name) -> None:
    response = Client().get(url(name))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize("name", ["list", "preferences"])
def test_outsiders_get_404(outsider, org, client_for, name) -> None:
    assert client_for(outsider).get(url(name)).status_code == 404


def test_someone_elses_notification_is_404_and_stays_unread(viewer, owner, client_for) -> None:
    row = ping(owner)

    response = client_for(viewer).post(url("read", pk=row.pk))

    assert response.status_code == 404
    row.refresh_from_db()
    assert row.read_at is None


def test_marking_one_read_answers_htmx_with_the_list(viewer, client_for) -> None:
    row = ping(viewer, "Read me")
    other = ping(viewer, "Still unread")

    response = client_for(viewer).post(url("read", pk=row.pk), **HTMX)

    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    row.refresh_from_db()
    other.refresh_from_db()
    assert row.read_at is not None
    assert other.read_at is None


def test_marking_all_read_without_htmx_comes_back_to_the_centre(viewer, client_for) -> None:
    ping(viewer)
    ping(viewer)

    response = client_for(viewer).post(url("read-all"))

    assert response.status_code == 302
    assert response["Location"] == url("list")
    assert not Notification.objects.filter(read_at__isnull=True).exists()


def test_preferences_list_every_kind_and_save_email_choices(viewer, client_for) -> None:
    client = client_for(viewer)
    page = client.get(url("preferences")).content.decode()
    assert "Test pings" in page
    assert "Approval needed" in page

    response = client.post(url("preferences"), {"email": ["approvals.needed"]}, follow=True)

    assert PREFERENCES_SAVED in response.content.decode()
    choices = dict(
        NotificationPreference.objects.filter(membership=viewer).values_list("kind", "email")
    )
    assert choices[KIND] is False
    assert choices["approvals.needed"] is True


def test_an_unknown_kind_in_the_preferences_is_a_400_not_a_500(viewer, client_for) -> None:
    response = client_for(viewer).post(url("preferences"), {"email": ["no.such.kind"]})

    assert response.status_code == 400
