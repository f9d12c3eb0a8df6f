"""The public application form is limited per address: a flood neither fills the review queue
nor the audit trail, and the refusal says how long to wait."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from apps.audit.models import AuditRecord
from apps.orgs.models import OnboardingApplication
from apps.orgs.views import APPLICATIONS_TOO_MANY
from tests.orgs.test_onboarding import APPLY, application_data

pytestmark = pytest.mark.django_db


def _apply(client: Client, n: int, **headers: str) -> int:
    data = application_data(email=f"applicant{n}@northwind.test", company_name=f"Fund {n}")
    return client.post(APPLY, data, headers=headers).status_code


def test_an_address_that_applies_too_often_is_refused_with_a_429(db: Any) -> None:
    flood = Client(REMOTE_ADDR="203.0.113.9")
    limit = settings.ONBOARDING_ADDRESS_LIMIT
    assert [_apply(flood, n) for n in range(limit)] == [302] * limit

    response = flood.post(APPLY, application_data(email="late@northwind.test"))
    assert response.status_code == 429
    assert APPLICATIONS_TOO_MANY.format(wait="60 minutes") in response.content.decode()
    # Refused before anything is stored or audited.
    assert OnboardingApplication.objects.count() == limit
    # The audit trail records the first application of the minute from this address; the rest
    # are counted into the next record (apps/audit/throttle.py), so a flood cannot grow the chain.
    assert AuditRecord.objects.filter(action="onboarding.apply").count() == 1

    # Another address applies as usual.
    assert _apply(Client(REMOTE_ADDR="192.0.2.20"), limit + 1) == 302


def test_a_forged_x_forwarded_for_does_not_reset_the_limit(db: Any) -> None:
    flood = Client(REMOTE_ADDR="203.0.113.9")
    limit = settings.ONBOARDING_ADDRESS_LIMIT
    statuses = [
        _apply(flood, n, **{"X-Forwarded-For": f"198.51.100.{n}"}) for n in range(limit + 1)
    ]
    assert statuses == [302] * limit + [429]


def test_behind_a_configured_proxy_each_client_has_its_own_limit(db: Any, settings: Any) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = Client(REMOTE_ADDR="10.0.0.1")
    limit = settings.ONBOARDING_ADDRESS_LIMIT
    statuses = [
        _apply(proxy, n, **{"X-Forwarded-For": f"198.51.100.{n % 2}"}) for n in range(limit + 2)
    ]
    # Two clients behind one proxy: each gets the whole allowance.
    assert statuses == [302] * (limit + 2)
