"""The organization's reporting currency and business-day time zone (issue 10 §2)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.approvals.models import ApprovalRequest
from apps.audit.models import AuditRecord
from apps.orgs.models import Organization
from apps.orgs.services.organizations import OWNER_ONLY_SETTING
from apps.orgs.validators import ASSET_CODE_INVALID, TIME_ZONE_INVALID
from tests.conftest import verified_client

pytestmark = pytest.mark.django_db

URL = reverse("orgs:settings", kwargs={"org": "acme"})


def post(client, **changes):
    data = {"name": "Acme Capital", "require_2fa": "on", **changes}
    return client.post(URL, data)


def test_a_new_organization_reports_in_usd_on_utc_days(org) -> None:
    assert (org.reporting_currency, org.business_timezone) == ("USD", "UTC")


def test_an_owner_changes_currency_and_time_zone_after_a_step_up_and_it_is_audited(
    owner, client_for
) -> None:
    response = post(verified_client(owner.user), reporting_currency="EUR")
    assert response["Location"].startswith(reverse("accounts:step-up"))
    response = post(client_for(owner), reporting_currency="xbt", business_timezone="Europe/London")
    assert response.status_code == 302
    org = Organization.objects.get(slug="acme")
    # The time zone applies at once; a new reporting currency loosens every threshold, so a
    # sole owner's waits 24 hours (apps.approvals.setting_changes, tested there).
    assert (org.reporting_currency, org.business_timezone) == ("USD", "Europe/London")
    record = AuditRecord.objects.get(action="organization.settings")
    assert record.detail["changes"] == {"business_timezone": ["UTC", "Europe/London"]}
    # Kraken's legacy spelling becomes the portal's asset code in what waits, too.
    held = ApprovalRequest.objects.get(kind="orgs.policy_change")
    assert held.summary == {"org_setting": "reporting_currency", "from": "USD", "to": "BTC"}


def test_an_admin_cannot_change_the_currency_or_time_zone(admin, client_for) -> None:
    page = client_for(admin).get(URL).content.decode()
    assert 'name="reporting_currency"' in page
    assert "disabled" in page
    # Disabled fields keep their value whatever is posted, and the rest saves.
    response = post(client_for(admin), name="Acme Renamed", reporting_currency="EUR")
    assert response.status_code == 302
    org = Organization.objects.get(slug="acme")
    assert (org.name, org.reporting_currency) == ("Acme Renamed", "USD")


def test_the_service_refuses_an_admin_with_a_field_error(admin) -> None:
    from django.core.exceptions import ValidationError

    from apps.orgs.services.organizations import organization_update_settings

    with pytest.raises(ValidationError) as raised:
        organization_update_settings(
            org=admin.org, actor=admin, name="Acme", require_2fa=True, reporting_currency="EUR"
        )
    assert raised.value.message_dict == {
        "reporting_currency": [OWNER_ONLY_SETTING.format(setting="reporting currency")]
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("reporting_currency", "US DOLLARS", ASSET_CODE_INVALID),
        ("reporting_currency", "€", ASSET_CODE_INVALID),
        ("business_timezone", "Mars/Olympus_Mons", TIME_ZONE_INVALID),
        ("business_timezone", "../../etc/passwd", TIME_ZONE_INVALID),
        ("business_timezone", "europe/london", TIME_ZONE_INVALID),
    ],
)
def test_bad_values_get_field_errors_never_a_500(owner, client_for, field, value, message) -> None:
    response = post(client_for(owner), **{field: value})
    assert response.status_code == 400
    assert message in response.content.decode()
    org = Organization.objects.get(slug="acme")
    assert (org.reporting_currency, org.business_timezone) == ("USD", "UTC")
