"""Every accounts view: its access policy, wrong method, anonymous visitor, normal case."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import resolve, reverse

pytestmark = pytest.mark.django_db

# url name -> (access kind, methods it answers)
VIEWS = {
    "accounts:login": ("public", {"GET", "POST"}),
    "accounts:logout": ("public", {"POST"}),
    "accounts:two-factor-verify": ("public", {"GET", "POST"}),
    "accounts:two-factor-setup": ("login", {"GET", "POST"}),
    "accounts:two-factor-disable": ("login", {"POST"}),
    "accounts:recovery-codes": ("login", {"GET", "POST"}),
    "accounts:step-up": ("login", {"GET", "POST"}),
    "accounts:profile": ("login", {"GET", "POST"}),
}
LOGIN = reverse("accounts:login")


@pytest.mark.parametrize("name", VIEWS)
def test_each_view_declares_its_access_policy(name: str) -> None:
    assert resolve(reverse(name)).func.access.kind == VIEWS[name][0]


@pytest.mark.parametrize("name", VIEWS)
def test_each_view_refuses_methods_it_does_not_serve(name: str, signed_in: Client) -> None:
    url = reverse(name)
    for method in {"GET", "POST", "PUT", "DELETE"} - VIEWS[name][1]:
        response = signed_in.generic(method, url)
        assert response.status_code == 405, (name, method)


@pytest.mark.parametrize("name", [n for n, (kind, _) in VIEWS.items() if kind == "login"])
def test_an_anonymous_visitor_is_sent_to_sign_in(name: str, client: Client) -> None:
    method = "get" if "GET" in VIEWS[name][1] else "post"
    response = getattr(client, method)(reverse(name))
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={reverse(name)}"


def test_an_anonymous_sign_out_just_shows_sign_in(client: Client) -> None:
    assert client.post(reverse("accounts:logout"))["Location"] == LOGIN


@pytest.mark.parametrize(
    "name",
    [
        "accounts:two-factor-setup",
        "accounts:recovery-codes",
        "accounts:step-up",
        "accounts:profile",
    ],
)
def test_each_page_renders_for_a_signed_in_person(name: str, signed_in: Client) -> None:
    response = signed_in.get(reverse(name))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<script>" not in page  # CSP: no inline scripts without a nonce.
    assert " style=" not in page  # CSP: no inline styles.


def test_the_sign_in_pages_render_without_inline_scripts_or_styles(client: Client) -> None:
    page = client.get(LOGIN).content.decode()
    assert "<script>" not in page
    assert " style=" not in page
