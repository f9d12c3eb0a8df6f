"""Credentials cannot be deleted from the admin: revocation goes through the vault's service,
which writes the audit trail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apps.orgs.models import Membership
from apps.vault.models import Credential
from tests.conftest import verified_client
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

StoreKey = Callable[..., tuple[Credential, Any]]


def test_a_superuser_cannot_delete_a_credential_in_the_admin(
    trader: Membership, store_key: StoreKey
) -> None:
    credential, _pair = store_key(trader)
    superuser = UserFactory(email="root@kraken.test", is_staff=True, is_superuser=True)
    client = verified_client(superuser)
    delete_url = f"/staff/admin/vault/credential/{credential.pk}/delete/"
    assert client.get(delete_url).status_code == 403
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert Credential.objects.filter(pk=credential.pk).exists()


def test_the_credential_list_offers_no_bulk_delete(trader: Membership, store_key: StoreKey) -> None:
    credential, _pair = store_key(trader)
    superuser = UserFactory(email="root@kraken.test", is_staff=True, is_superuser=True)
    client = verified_client(superuser)
    response = client.get("/staff/admin/vault/credential/")
    assert response.status_code == 200
    assert "delete_selected" not in response.content.decode()
    response = client.post(
        "/staff/admin/vault/credential/",
        {"action": "delete_selected", "_selected_action": [credential.pk], "post": "yes"},
    )
    assert Credential.objects.filter(pk=credential.pk).exists()
    # The credential page itself still shows (read-only) without a delete link.
    page = client.get(f"/staff/admin/vault/credential/{credential.pk}/change/")
    assert page.status_code == 200
    assert "/delete/" not in page.content.decode()
