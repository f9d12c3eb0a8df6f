"""A key may trade or move funds only once the permission probe has checked it and found no
power its use never needs (or the organization accepts over-privileged keys). Reading and
cancelling do not wait for the check."""

from __future__ import annotations

from typing import Any

import pytest

from apps.exchange.tasks import credential_check_task
from apps.vault.models import Credential, Use
from apps.vault.services import (
    KEY_NOT_CHECKED,
    KEY_PERMISSIONS_UNDETERMINED,
    KeyNotChecked,
    KeyPurpose,
    credential_key_for_task,
    credential_test,
)

pytestmark = pytest.mark.django_db


def _open(credential: Credential, purpose: KeyPurpose) -> str:
    return credential_key_for_task(credential_id=credential.pk, purpose=purpose).secret


def test_a_key_never_checked_cannot_trade_or_fund_but_can_read_and_cancel(
    trader, treasurer, store_key
) -> None:
    trading, pair = store_key(trader, use=Use.TRADING)
    funding, _ = store_key(treasurer, use=Use.FUNDING)
    # Stored while the broker was down: the probe stays pending for ever.
    credential_test(credential=trading)
    credential_test(credential=funding)

    for credential, purpose in ((trading, KeyPurpose.TRADE), (funding, KeyPurpose.FUND)):
        with pytest.raises(KeyNotChecked) as refused:
            _open(credential, purpose)
        assert str(refused.value) == KEY_NOT_CHECKED
    assert _open(trading, KeyPurpose.READ) == pair.secret
    assert _open(trading, KeyPurpose.CANCEL) == pair.secret


def test_a_key_whose_check_failed_cannot_trade(trader, store_key, sandbox, settings) -> None:
    settings.KRAKEN_API_URL = sandbox.url
    trading, _ = store_key(trader, use=Use.TRADING)  # a key the sandbox does not know
    credential_test(credential=trading)
    credential_check_task(trading.pk)
    trading.refresh_from_db()
    assert trading.probe_status == Credential.ProbeStatus.FAILED

    with pytest.raises(KeyNotChecked, match="have not been checked yet"):
        _open(trading, KeyPurpose.TRADE)


def test_a_checked_key_with_exactly_what_its_use_needs_trades_and_funds(
    trader, treasurer, store_checked_key
) -> None:
    trading, trading_pair = store_checked_key(trader, use=Use.TRADING)
    funding, funding_pair = store_checked_key(treasurer, use=Use.FUNDING)

    assert trading.probe_status == Credential.ProbeStatus.DONE
    assert _open(trading, KeyPurpose.TRADE) == trading_pair.secret
    assert _open(funding, KeyPurpose.FUND) == funding_pair.secret


def _probe_without_key_info(sandbox: Any, store_checked_key: Any, member: Any) -> Credential:
    # Kraken cannot answer GetApiKeyInfo: the call-by-call fallback cannot tell Earn.
    sandbox.set_faults([{"kind": "unavailable", "endpoint": "GetApiKeyInfo", "probability": 1}])
    try:
        trading: Credential = store_checked_key(member, use=Use.TRADING)[0]
    finally:
        sandbox.clear_faults()
    assert trading.probe_status == Credential.ProbeStatus.DONE
    assert trading.permissions["earn"] is None
    return trading


def test_a_key_with_a_power_left_undetermined_cannot_trade(
    trader, sandbox, store_checked_key
) -> None:
    trading = _probe_without_key_info(sandbox, store_checked_key, trader)

    with pytest.raises(KeyNotChecked) as refused:
        _open(trading, KeyPurpose.TRADE)
    assert str(refused.value) == KEY_PERMISSIONS_UNDETERMINED.format(
        names="earn (allocate & deallocate)", use="trading use"
    )


def test_an_org_that_accepts_overprivileged_keys_trades_with_an_undetermined_power(
    trader, sandbox, store_checked_key
) -> None:
    trader.org.allow_overprivileged_keys = True
    trader.org.save(update_fields=["allow_overprivileged_keys"])
    trading = _probe_without_key_info(sandbox, store_checked_key, trader)

    assert _open(trading, KeyPurpose.TRADE)
