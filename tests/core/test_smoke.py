from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_anonymous_visitor_is_sent_to_sign_in(client: Client) -> None:
    response = client.get(reverse("core:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_health_check_reports_ok(client: Client) -> None:
    assert client.get(reverse("core:healthz")).json() == {"status": "ok"}


def test_a_member_sees_their_organization_dashboard(owner, client_for) -> None:
    response = client_for(owner).get(reverse("orgs:dashboard", kwargs={"org": owner.org.slug}))
    assert response.status_code == 200
    assert "Acme Capital" in response.content.decode()


def test_an_outsider_gets_404_for_another_organization(owner, outsider, client_for) -> None:
    response = client_for(outsider).get(reverse("orgs:dashboard", kwargs={"org": owner.org.slug}))
    assert response.status_code == 404
