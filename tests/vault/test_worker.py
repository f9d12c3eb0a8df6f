"""The probe through a real Celery worker: the message carries only the credential id, and a
worker that cannot open the vault records a clear failure instead of using anything else."""

from __future__ import annotations

import time

import pytest

from apps.vault import crypto
from apps.vault.models import Credential, Use
from kraken_portal.celery import app
from tests.factories import master_account

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_for_probe(credential: Credential, timeout: float = 60) -> Credential:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        credential.refresh_from_db()
        if not credential.probe_in_progress:
            return credential
        time.sleep(0.1)
    pytest.fail("The worker did not finish the probe.")


def test_the_worker_runs_the_probe_queued_on_commit_and_fails_without_our_keyring(
    celery_worker_proc, trader, key_pair
) -> None:
    inspect = app.control.inspect([celery_worker_proc.hostname], timeout=5)
    registered = inspect.registered()[celery_worker_proc.hostname]
    assert "apps.exchange.tasks.credential_check_task" in registered

    from apps.vault.services import credential_create

    # This test's keyring exists only in this process: the worker cannot have it.
    credential = credential_create(
        membership=trader,
        label="Worker key",
        api_key=key_pair.api_key,
        secret=key_pair.secret,
        otp=None,
        account=master_account(trader.org),
        use=Use.TRADING,
    )
    credential = wait_for_probe(credential)
    assert credential.probe_status == "failed"
    vault_messages = (
        crypto.VAULT_UNAVAILABLE,
        crypto.DECRYPT_FAILED,
        crypto.KEK_UNKNOWN.format(kek_id="k1"),
    )
    assert credential.last_error in vault_messages
    assert key_pair.secret not in celery_worker_proc.log()
