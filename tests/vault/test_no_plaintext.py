"""Secrets at rest: a full dump of the database holds no spelling of any stored secret."""

from __future__ import annotations

import os
import subprocess
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from apps.vault.models import Use
from apps.vault.services import KeyPurpose, credential_key_for_task

# pg_dump reads committed data, so these tests commit (and pytest-django truncates afterwards).
pytestmark = pytest.mark.django_db(transaction=True)


def pg_dump() -> str:
    db = connection.settings_dict
    env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
    command = ["pg_dump", "--no-owner", "--dbname", db["NAME"]]
    for flag, value in (("--host", db["HOST"]), ("--port", db["PORT"]), ("--username", db["USER"])):
        if value:
            command += [flag, str(value)]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def stored(owner, trader, treasurer, store_key):
    keys = [
        store_key(owner, use=Use.TRADING, designated=True, otp="owner-2fa-pw"),
        store_key(trader, use=Use.TRADING, otp="trader-2fa-pw"),
        store_key(treasurer, use=Use.FUNDING),
    ]
    for credential, _ in keys:  # Use them too: last_used_at and the logs get written.
        credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.READ)
    return keys


def test_a_full_database_dump_holds_no_form_of_any_secret(stored) -> None:
    dump = pg_dump()
    assert "vault_credential" in dump
    lowered = dump.lower()
    for credential, pair in stored:
        assert credential.api_key in dump  # The public key is stored (and the dump is real).
        for form in pair.secret_forms():
            assert form not in dump
            assert form.lower() not in lowered


def test_dumpdata_of_every_model_holds_no_form_of_any_secret(stored) -> None:
    out = StringIO()
    call_command("dumpdata", stdout=out)
    dump = out.getvalue()
    for _, pair in stored:
        for form in pair.secret_forms():
            assert form not in dump
