"""The organization switcher in the top bar submits `?org=<slug>` to core:home."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.orgs.permissions import Role
from tests.factories import MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

HOME = reverse("core:home")


def test_switching_makes_the_organization_current(trader, client_for) -> None:
    beta = OrganizationFactory(name="Beta Partners", slug="beta")
    MembershipFactory(org=beta, user=trader.user, role=Role.OWNER)
    client = client_for(trader)
    response = client.get(HOME, {"org": "beta"})
    assert response["Location"] == reverse("orgs:dashboard", kwargs={"org": "beta"})
    trader.user.refresh_from_db()
    assert trader.user.current_org == beta
    # Later visits to the home page go to the chosen organization.
    assert client.get(HOME)["Location"] == reverse("orgs:dashboard", kwargs={"org": "beta"})
    client.get(HOME, {"org": "acme"})
    assert client.get(HOME)["Location"] == reverse("orgs:dashboard", kwargs={"org": "acme"})


def test_switching_to_someone_elses_organization_is_a_404(trader, outsider, client_for) -> None:
    response = client_for(trader).get(HOME, {"org": outsider.org.slug})
    assert response.status_code == 404
    trader.user.refresh_from_db()
    assert trader.user.current_org is None


def test_the_switcher_lists_every_organization_with_the_role(trader, client_for) -> None:
    MembershipFactory(org=OrganizationFactory(name="Beta Partners", slug="beta"), user=trader.user)
    page = client_for(trader).get(reverse("orgs:dashboard", kwargs={"org": "acme"}))
    html = page.content.decode()
    assert '<option value="acme" selected>Acme Capital · Trader</option>' in html
    assert '<option value="beta">Beta Partners · Viewer</option>' in html
    assert "<noscript><button" in html  # It works without JavaScript too.
