"""The hash chain: gapless, sealed, append-only, and free of secrets."""

from __future__ import annotations

import itertools

import pytest
from django.db import DatabaseError, connection, transaction

from apps.audit.chain import chain_key_for, record_hash
from apps.audit.models import AuditChain, AuditRecord
from apps.audit.selectors import audit_chain_verify, audit_chains_verify
from apps.audit.services import audit_record

pytestmark = pytest.mark.django_db


def test_many_appends_form_one_gapless_linked_chain_per_organization(owner, outsider) -> None:
    for i in range(60):
        audit_record(action="test.append", actor=owner, detail={"i": i})
        if i % 3 == 0:
            audit_record(action="test.other", actor=outsider, detail={"i": i})
        if i % 10 == 0:
            audit_record(action="test.global", detail={"i": i})

    acme = list(AuditRecord.objects.filter(chain=chain_key_for(owner.org_id)).order_by("seq"))
    assert [r.seq for r in acme] == list(range(1, 61))
    assert acme[0].prev_hash == ""
    for previous, record in itertools.pairwise(acme):
        assert record.prev_hash == previous.hash
    head = AuditChain.objects.get(key=chain_key_for(owner.org_id))
    assert (head.last_seq, head.last_hash) == (60, acme[-1].hash)
    reports = {report.chain: report for report in audit_chains_verify()}
    assert reports[chain_key_for(owner.org_id)].records == 60
    assert reports[chain_key_for(outsider.org_id)].records == 20
    assert reports["global"].records == 6
    assert all(report.ok for report in reports.values())


@pytest.mark.parametrize(
    "detail",
    [
        {"api_secret": "abc"},
        {"Password": "hunter2"},
        {"key": {"otp_code": "123456"}},
        {"items": [{"refresh_token": "x"}]},
        {"private_key": "-----"},
    ],
)
def test_detail_keys_that_could_hold_a_secret_are_refused(owner, detail) -> None:
    with pytest.raises(ValueError, match="could hold a secret"):
        audit_record(action="test.secret", actor=owner, detail=detail)
    assert not AuditRecord.objects.exists()


def test_a_record_reads_back_with_the_hash_it_was_sealed_with(owner) -> None:
    # PostgreSQL's inet rewrites IPv6 addresses; the record must still verify once read back.
    for ip in ("2001:DB8:0::1", "::ffff:10.0.0.1", "192.0.2.7", "not-an-ip"):
        audit_record(
            action="test.ip",
            actor=owner,
            ip=ip,
            user_agent="Mozilla/5.0 " + "x" * 400,
            detail={"amount": "1.50000000", "nested": {"b": [1, 2.5, None], "a": "ü"}},
        )
    for record in AuditRecord.objects.all():
        assert record_hash(record) == record.hash
    assert audit_chain_verify(chain=chain_key_for(owner.org_id)).ok


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditrecord SET action = 'test.forged' WHERE id = %s",
        "DELETE FROM audit_auditrecord WHERE id = %s",
    ],
)
def test_the_database_refuses_to_change_or_delete_a_record(owner, statement) -> None:
    record = audit_record(action="test.keep", actor=owner)
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement, [record.pk])
    record.refresh_from_db()
    assert record.action == "test.keep"


def test_the_orm_cannot_save_an_existing_record_either(owner) -> None:
    record = audit_record(action="test.keep", actor=owner)
    record.action = "test.forged"
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        record.save()
    record.refresh_from_db()
    assert record.action == "test.keep"


@pytest.mark.django_db(transaction=True)
def test_a_nul_character_typed_into_a_form_is_recorded_visibly_not_refused(owner) -> None:
    # Hypothesis found it: a NUL in a refused order's price reached the audit detail, and
    # PostgreSQL (text and jsonb cannot hold NUL) turned the refusal into a 500.
    record = audit_record(
        action="test.nul",
        actor=owner,
        detail={"price2": "1\x002", "fields\x00": ["a\x00"]},
        user_agent="agent\x00",
    )
    stored = AuditRecord.objects.get(pk=record.pk)
    assert stored.detail == {"price2": "1\ufffd2", "fields\ufffd": ["a\ufffd"]}
    assert stored.user_agent == "agent\ufffd"
    assert audit_chain_verify(chain=chain_key_for(owner.org_id)).ok
