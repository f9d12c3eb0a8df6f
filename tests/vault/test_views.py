from __future__ import annotations

import logging

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.audit.models import AuditRecord
from apps.orgs.models import Organization
from apps.vault.hooks import key_check_enqueue
from apps.vault.models import Credential, Use
from apps.vault.validators import API_KEY_FORMAT, PRIVATE_KEY_FORMAT
from apps.vault.views import KEY_DELETED, KEY_REVOKED
from tests.factories import master_account
from tests.vault.conftest import new_key_pair

pytestmark = pytest.mark.django_db


def url(name: str, org: str = "acme", **kwargs) -> str:
    return reverse(f"vault:{name}", kwargs={"org": org, **kwargs})


def form_data(pair, **extra) -> dict[str, str]:
    return {
        "label": "Desk BTC",
        "api_key": pair.api_key,
        "secret": pair.secret,
        "otp": pair.otp or "",
        "account": str(master_account(Organization.objects.get(slug="acme")).pk),
        "use": Use.TRADING,
        **extra,
    }


def page_text(response):
    text = response.content.decode()
    text += " ".join(str(m) for m in get_messages(response.wsgi_request))
    return text


# --- Access -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "needs_pk"),
    [
        ("credential-list", False),
        ("credential-create", False),
        ("credential-detail", True),
        ("credential-revoke", True),
        ("credential-delete", True),
    ],
)
def test_anonymous_visitors_are_sent_to_sign_in(client: Client, org, name, needs_pk) -> None:
    response = client.get(url(name, **({"pk": 1} if needs_pk else {})))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_an_outsider_gets_404_on_every_vault_page(outsider, org, stepped_up_client_for) -> None:
    client = stepped_up_client_for(outsider)
    assert client.get(url("credential-list")).status_code == 404
    assert client.get(url("credential-create")).status_code == 404
    assert client.post(url("credential-test", pk=1)).status_code == 404


@pytest.mark.parametrize("persona", ["viewer", "approver"])
def test_roles_without_key_management_cannot_add_keys(
    request, persona, stepped_up_client_for
) -> None:
    member = request.getfixturevalue(persona)
    client = stepped_up_client_for(member)
    # They may list their own keys (a demoted member reads why theirs became cancel-only),
    # but not add any.
    response = client.get(url("credential-list"))
    assert response.status_code == 200
    assert url("credential-create") not in response.content.decode()
    assert client.get(url("credential-create")).status_code == 403
    response = client.post(url("credential-create"), form_data(new_key_pair()))
    assert response.status_code == 403
    assert not Credential.objects.exists()


def test_wrong_methods_are_refused(trader, stepped_up_client_for, store_key) -> None:
    credential, _ = store_key(trader)
    client = stepped_up_client_for(trader)
    assert client.post(url("credential-list")).status_code == 405
    assert client.get(url("credential-test", pk=credential.pk)).status_code == 405
    assert client.get(url("credential-designate", pk=credential.pk)).status_code == 405
    assert client.delete(url("credential-revoke", pk=credential.pk)).status_code == 405


def test_a_member_cannot_see_or_touch_another_members_key(
    trader, treasurer, stepped_up_client_for, store_key
) -> None:
    theirs, _ = store_key(treasurer, use=Use.FUNDING, label="Treasury key")
    client = stepped_up_client_for(trader)
    assert "Treasury key" not in client.get(url("credential-list")).content.decode()
    assert client.get(url("credential-detail", pk=theirs.pk)).status_code == 404
    assert client.post(url("credential-test", pk=theirs.pk)).status_code == 404
    assert client.post(url("credential-revoke", pk=theirs.pk)).status_code == 404
    assert client.post(url("credential-delete", pk=theirs.pk)).status_code == 404
    assert (
        client.post(url("credential-designate", pk=theirs.pk), {"designated": "1"}).status_code
        == 404
    )
    theirs.refresh_from_db()
    assert theirs.is_active


def test_admins_see_and_manage_designated_keys_but_not_owners_personal_ones(
    owner, admin, trader, stepped_up_client_for, store_key, django_capture_on_commit_callbacks
) -> None:
    desk, _ = store_key(owner, designated=True, label="Desk key")
    personal, _ = store_key(owner, use=Use.FUNDING, label="Owner personal")
    client = stepped_up_client_for(admin)
    listing = client.get(url("credential-list")).content.decode()
    assert "Desk key" in listing
    assert "Owner personal" not in listing
    assert client.get(url("credential-detail", pk=desk.pk)).status_code == 200
    assert client.get(url("credential-detail", pk=personal.pk)).status_code == 404
    with django_capture_on_commit_callbacks():
        assert client.post(url("credential-test", pk=desk.pk)).status_code == 302
    # A trader does not see the organization's designated key at all.
    trader_client = stepped_up_client_for(trader)
    assert "Desk key" not in trader_client.get(url("credential-list")).content.decode()
    assert trader_client.get(url("credential-detail", pk=desk.pk)).status_code == 404


# --- List and detail ---------------------------------------------------------------------------


def test_the_list_shows_the_masked_key_never_the_whole_one(trader, client_for, store_key) -> None:
    credential, pair = store_key(trader)
    response = client_for(trader).get(url("credential-list"))
    text = response.content.decode()
    assert response.status_code == 200
    assert credential.masked_key in text
    assert pair.api_key not in text
    assert pair.secret not in text


def test_the_list_costs_the_same_queries_however_many_keys_it_shows(
    owner, trader, client_for, store_key
) -> None:
    store_key(owner, use=Use.TRADING, label="Owner trading")
    client = client_for(owner)
    client.get(url("credential-list"))  # warm the session and caches
    with CaptureQueriesContext(connection) as one_key:
        assert client.get(url("credential-list")).status_code == 200
    store_key(owner, use=Use.FUNDING, label="Owner funding")
    store_key(trader, use=Use.TRADING, designated=False, label="Trader personal")
    store_key(owner, use=Use.FUNDING, designated=True, label="Desk funding")
    with CaptureQueriesContext(connection) as four_keys:
        text = client.get(url("credential-list")).content.decode()
    assert "Desk funding" in text
    assert "Owner funding" in text
    assert len(four_keys) == len(one_key)


def test_the_list_serves_its_table_fragment_to_htmx(trader, client_for, store_key) -> None:
    store_key(trader)
    response = client_for(trader).get(url("credential-list"), headers={"HX-Request": "true"})
    text = response.content.decode()
    assert text.lstrip().startswith('<div id="credential-table"')
    assert "<html" not in text


def test_the_list_polls_while_a_check_is_running(trader, client_for, store_key) -> None:
    credential, _ = store_key(trader)
    client = client_for(trader)
    assert "hx-trigger" not in client.get(url("credential-list")).content.decode()
    Credential.objects.filter(pk=credential.pk).update(probe_status="pending")
    assert 'hx-trigger="every 2s"' in client.get(url("credential-list")).content.decode()


def test_a_trading_key_that_can_withdraw_gets_a_least_privilege_warning(
    trader, client_for, store_key
) -> None:
    credential, _ = store_key(trader)
    Credential.objects.filter(pk=credential.pk).update(
        probe_status="done",
        permissions={"query_funds": True, "query_open": True, "trade": True, "withdraw": True},
    )
    client = client_for(trader)
    for page in (url("credential-list"), url("credential-detail", pk=credential.pk)):
        text = client.get(page).content.decode()
        assert "can do more than trading use needs: Withdraw funds" in text
        assert "This key can withdraw funds" in text


def test_the_detail_page_serves_its_permissions_fragment_to_htmx(
    trader, client_for, store_key
) -> None:
    credential, _ = store_key(trader)
    response = client_for(trader).get(
        url("credential-detail", pk=credential.pk), headers={"HX-Request": "true"}
    )
    assert response.content.decode().lstrip().startswith('<section id="credential-permissions"')


# --- Adding a key ------------------------------------------------------------------------------


def test_adding_a_key_needs_a_fresh_step_up(trader, client_for) -> None:
    client = client_for(trader)
    response = client.get(url("credential-create"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:step-up"))
    response = client.post(url("credential-create"), form_data(new_key_pair()))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:step-up"))
    assert not Credential.objects.exists()


def test_a_member_adds_a_key_and_its_permission_check_is_queued_after_commit(
    trader, stepped_up_client_for, django_capture_on_commit_callbacks, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    pair = new_key_pair(otp="key-2fa-pw")
    client = stepped_up_client_for(trader)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(url("credential-create"), form_data(pair), follow=True)
    credential = Credential.objects.get()
    assert response.redirect_chain[-1][0] == url("credential-detail", pk=credential.pk)
    assert (credential.owner, credential.use, credential.label) == (trader, "trading", "Desk BTC")
    assert credential.probe_status == "pending"
    # The task message carries the credential's id and nothing else.
    # The vault asks through its hook, which exchange fills with its check task.
    [callback] = callbacks
    assert callback.func is key_check_enqueue
    assert callback.args == (credential.pk,)
    assert not callback.keywords
    text = page_text(response)
    assert "will not be shown again" in text
    for form in pair.secret_forms():
        assert form not in text
        assert all(form not in record.getMessage() for record in caplog.records)
    assert AuditRecord.objects.filter(action="vault.credential.create").count() == 1


def test_a_malformed_private_key_gets_a_field_error_and_is_never_echoed(
    trader, stepped_up_client_for
) -> None:
    pair = new_key_pair()
    bad_secret = pair.secret[:-8]
    response = stepped_up_client_for(trader).post(
        url("credential-create"), form_data(pair, secret=bad_secret, otp="pw-123")
    )
    text = response.content.decode()
    assert response.status_code == 200  # The form again, with the error by the field.
    assert PRIVATE_KEY_FORMAT in text
    assert bad_secret not in text
    assert "pw-123" not in text
    assert not Credential.objects.exists()


def test_a_valid_secret_is_not_re_rendered_when_another_field_is_wrong(
    trader, stepped_up_client_for
) -> None:
    pair = new_key_pair(otp="pw-123")
    response = stepped_up_client_for(trader).post(
        url("credential-create"), form_data(pair, api_key="not a key")
    )
    text = response.content.decode()
    assert response.status_code == 200  # The form again, with the error by the field.
    assert API_KEY_FORMAT in text
    for form in pair.secret_forms():
        assert form not in text


def test_a_second_active_key_for_the_same_use_is_a_form_error(
    trader, stepped_up_client_for, store_key
) -> None:
    store_key(trader)
    response = stepped_up_client_for(trader).post(
        url("credential-create"), form_data(new_key_pair())
    )
    assert response.status_code == 200  # The form again, with the error by the field.
    assert "already have an active trading key" in response.content.decode()
    assert Credential.objects.count() == 1


def test_without_a_keyring_adding_a_key_says_so_and_stores_nothing(
    trader, stepped_up_client_for, settings
) -> None:
    client = stepped_up_client_for(trader)  # its authenticator is sealed with the keyring
    settings.PORTAL_KEYRING = ""
    pair = new_key_pair()
    response = client.post(url("credential-create"), form_data(pair))
    assert response.status_code == 503
    assert "vault is not configured" in response.content.decode()
    assert pair.secret not in response.content.decode()
    assert not Credential.objects.exists()


def test_only_owners_and_admins_are_offered_the_designation_box(
    owner, admin, trader, stepped_up_client_for
) -> None:
    for manager in (owner, admin):
        page = stepped_up_client_for(manager).get(url("credential-create")).content.decode()
        assert 'name="designated"' in page
    assert (
        'name="designated"'
        not in stepped_up_client_for(trader).get(url("credential-create")).content.decode()
    )
    stepped_up_client_for(trader).post(
        url("credential-create"), form_data(new_key_pair(), designated="on")
    )
    assert not Credential.objects.filter(designated=True).exists()


# --- Test, revoke, delete, share ---------------------------------------------------------------


def test_testing_a_key_queues_a_fresh_probe(
    trader, client_for, store_key, django_capture_on_commit_callbacks
) -> None:
    credential, _ = store_key(trader)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_for(trader).post(url("credential-test", pk=credential.pk))
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.probe_status == "pending"
    assert [c.args for c in callbacks] == [(credential.pk,)]


def test_testing_by_htmx_returns_the_polling_permissions_fragment(
    trader, client_for, store_key, django_capture_on_commit_callbacks
) -> None:
    credential, _ = store_key(trader)
    with django_capture_on_commit_callbacks():
        response = client_for(trader).post(
            url("credential-test", pk=credential.pk), headers={"HX-Request": "true"}
        )
    text = response.content.decode()
    assert text.lstrip().startswith('<section id="credential-permissions"')
    assert 'hx-trigger="every 2s"' in text


def test_revoking_a_key_destroys_its_secret_and_is_audited(trader, client_for, store_key) -> None:
    credential, _ = store_key(trader)
    client = client_for(trader)
    assert client.get(url("credential-revoke", pk=credential.pk)).status_code == 200
    response = client.post(url("credential-revoke", pk=credential.pk), follow=True)
    assert KEY_REVOKED.format(label="Desk BTC") in page_text(response)
    credential.refresh_from_db()
    assert credential.status == "revoked"
    assert bytes(credential.secret_ciphertext) == b""
    assert AuditRecord.objects.filter(action="vault.credential.revoke").count() == 1


def test_deleting_a_key_needs_step_up_and_is_audited(
    trader, client_for, stepped_up_client_for, store_key
) -> None:
    credential, _ = store_key(trader)
    response = client_for(trader).post(url("credential-delete", pk=credential.pk))
    assert response["Location"].startswith(reverse("accounts:step-up"))
    assert Credential.objects.filter(pk=credential.pk).exists()
    client = stepped_up_client_for(trader)
    assert client.get(url("credential-delete", pk=credential.pk)).status_code == 200
    response = client.post(url("credential-delete", pk=credential.pk), follow=True)
    assert KEY_DELETED.format(label="Desk BTC") in page_text(response)
    assert not Credential.objects.filter(pk=credential.pk).exists()
    record = AuditRecord.objects.get(action="vault.credential.delete")
    assert record.target_id == str(credential.pk)


def test_an_owner_designates_a_key_with_step_up(
    owner, trader, client_for, stepped_up_client_for, store_key
) -> None:
    credential, _ = store_key(owner)
    response = client_for(owner).post(
        url("credential-designate", pk=credential.pk), {"designated": "1"}
    )
    assert response["Location"].startswith(reverse("accounts:step-up"))
    response = stepped_up_client_for(owner).post(
        url("credential-designate", pk=credential.pk), {"designated": "1"}
    )
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.designated
    mine, _ = store_key(trader, use=Use.READ_ONLY)
    response = stepped_up_client_for(trader).post(
        url("credential-designate", pk=mine.pk), {"designated": "1"}
    )
    assert response.status_code == 403


def test_error_reports_would_mask_the_secret_fields(trader, stepped_up_client_for) -> None:
    from django.views.debug import SafeExceptionReporterFilter

    pair = new_key_pair(otp="pw-123")
    response = stepped_up_client_for(trader).post(url("credential-create"), form_data(pair))
    reported = SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request)
    assert reported["secret"] == reported["otp"] == SafeExceptionReporterFilter.cleansed_substitute
    assert reported["api_key"] == pair.api_key
