"""`manage.py audit_verify`: proves the chains intact, or names the first broken link."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.audit.chain import chain_key_for
from apps.audit.models import AuditChain, AuditRecord
from apps.audit.services import audit_record

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


def tamper(sql: str, params: list[object]) -> None:
    """Change audit rows behind the trigger's back, as a database superuser could.

    The test's transaction is rolled back afterwards, which restores the trigger as well.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditrecord DISABLE TRIGGER USER")
        else:
            cursor.execute("DROP TRIGGER IF EXISTS audit_auditrecord_no_update")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditrecord ENABLE TRIGGER USER")


def verify(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("audit_verify", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def verify_fails(*args: str) -> str:
    err = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("audit_verify", *args, stdout=io.StringIO(), stderr=err)
    assert excinfo.value.returncode == 1
    return err.getvalue()


@pytest.fixture
def trail(owner, outsider) -> list[AuditRecord]:
    """Five records in acme's chain, two in another organization's, one global."""
    records = [audit_record(action=f"test.step{i}", actor=owner) for i in range(1, 6)]
    audit_record(action="test.elsewhere", actor=outsider)
    audit_record(action="test.elsewhere", actor=outsider)
    audit_record(action="test.global")
    return records


def test_it_prints_counts_when_every_chain_is_intact(trail) -> None:
    out, err = verify()
    assert out.strip() == "OK: 3 chains, 8 records verified, no broken link."
    assert err == ""


def test_it_names_the_record_whose_content_was_edited(trail) -> None:
    edited = trail[2]
    tamper("UPDATE audit_auditrecord SET action = %s WHERE id = %s", ["test.innocent", edited.pk])
    err = verify_fails()
    chain = chain_key_for(edited.org_id)
    assert f"chain '{chain}' broken at seq 3 (record id {edited.pk}): HMAC mismatch" in err
    assert "2 records verified before it" in err


def test_it_names_a_record_whose_stored_hash_was_replaced(trail) -> None:
    tamper("UPDATE audit_auditrecord SET hash = %s WHERE id = %s", ["0" * 64, trail[1].pk])
    assert f"seq 2 (record id {trail[1].pk}): HMAC mismatch" in verify_fails()


def test_it_notices_a_record_removed_from_the_middle(trail) -> None:
    tamper("DELETE FROM audit_auditrecord WHERE id = %s", [trail[1].pk])
    err = verify_fails()
    assert f"seq 2 (record id {trail[2].pk}): sequence gap: expected seq 2, found 3" in err


def test_it_notices_records_removed_from_the_end(trail) -> None:
    tamper("DELETE FROM audit_auditrecord WHERE id = %s", [trail[4].pk])
    err = verify_fails()
    assert (
        "broken at seq 5 (no record): the chain head says seq 5 but the records end at seq 4" in err
    )


def test_it_notices_a_record_copied_in_from_another_chain(trail, outsider) -> None:
    # Re-link a record of another organization into acme's chain at a free sequence number.
    foreign = AuditRecord.objects.filter(org_id=outsider.org_id).order_by("seq").first()
    assert foreign is not None
    tamper(
        "UPDATE audit_auditrecord SET chain = %s, seq = 6, prev_hash = %s WHERE id = %s",
        [chain_key_for(trail[0].org_id), trail[4].hash, foreign.pk],
    )
    AuditChain.objects.filter(key=chain_key_for(trail[0].org_id)).update(
        last_seq=6, last_hash=foreign.hash
    )
    assert f"seq 6 (record id {foreign.pk}): HMAC mismatch" in verify_fails()


def test_it_checks_only_the_requested_organization(trail, outsider) -> None:
    other = AuditRecord.objects.filter(org_id=outsider.org_id).first()
    assert other is not None
    tamper("UPDATE audit_auditrecord SET detail = %s WHERE id = %s", ['{"x": 1}', other.pk])
    out, _ = verify("--org", "acme")
    assert out.strip() == "OK: 1 chains, 5 records verified, no broken link."
    assert f"record id {other.pk}" in verify_fails("--org", "other")


def test_an_unknown_organization_is_an_error(trail) -> None:
    with pytest.raises(CommandError, match="No organization with slug 'nope'"):
        verify("--org", "nope")


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_non_zero_on_a_break(owner) -> None:
    # The success path (exit 0, counts) is covered through call_command above; one subprocess
    # proves the exit status a cron job or CI step would see.
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("another process cannot open an in-memory SQLite test database")
    records = [audit_record(action="test.step", actor=owner) for _ in range(3)]
    env = {**os.environ, "DATABASE_URL": _database_url()}
    command = [sys.executable, "manage.py", "audit_verify"]
    tamper("UPDATE audit_auditrecord SET target_repr = %s WHERE id = %s", ["x", records[1].pk])
    broken = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert broken.returncode == 1
    assert f"record id {records[1].pk}" in broken.stderr


def _database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    return (
        f"postgres://{settings['USER']}:{settings['PASSWORD']}@{settings['HOST']}:"
        f"{settings['PORT'] or 5432}/{settings['NAME']}"
    )
