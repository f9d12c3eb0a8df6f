"""Anchors: published chain heads catch a chain rewritten and re-sealed with the HMAC key."""

from __future__ import annotations

import io
import json
import shutil
import stat
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.audit.anchors import audit_anchors_publish
from apps.audit.chain import chain_key_for, record_hash
from apps.audit.models import AuditChain, AuditRecord
from apps.audit.services import audit_chains_check, audit_record
from apps.audit.tasks import audit_anchors_publish_task
from kraken_portal.celery import app as celery_app

pytestmark = pytest.mark.django_db

DAY_ONE = datetime(2026, 11, 30, 0, 5, tzinfo=UTC)
DAY_TWO = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)


def rewrite_with_the_key(*, chain: str, seq: int, action: str) -> None:
    """Change one record and re-seal it and every later one, head included, as an insider with
    the HMAC key and the database owner's password could (the trigger is the owner's to disable).
    """
    previous = AuditRecord.objects.filter(chain=chain, seq=seq - 1).first()
    prev_hash = previous.hash if previous is not None else ""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditrecord DISABLE TRIGGER USER")
    for record in AuditRecord.objects.filter(chain=chain, seq__gte=seq).order_by("seq"):
        if record.seq == seq:
            record.action = action
        record.prev_hash = prev_hash
        record.hash = record_hash(record)
        AuditRecord.objects.filter(pk=record.pk).update(
            action=record.action, prev_hash=record.prev_hash, hash=record.hash
        )
        prev_hash = record.hash
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditrecord ENABLE TRIGGER USER")
    AuditChain.objects.filter(key=chain).update(last_hash=prev_hash)


def verify(*args: str) -> str:
    out = io.StringIO()
    call_command("audit_verify", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def verify_fails(*args: str) -> tuple[str, str]:
    err = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("audit_verify", *args, stdout=io.StringIO(), stderr=err)
    assert excinfo.value.returncode == 1
    return str(excinfo.value), err.getvalue()


def test_each_chain_gets_one_read_only_file_per_day_with_its_head(
    tmp_path: Path, owner, outsider
) -> None:
    for _ in range(3):
        last = audit_record(action="test.step", actor=owner)
    audit_record(action="test.global")
    publication = audit_anchors_publish(directory=tmp_path, now=DAY_ONE)
    names = sorted(path.name for path in publication.written)
    assert names == ["global_2026-11-30.json", f"org-{owner.org_id}_2026-11-30.json"]
    anchor = json.loads((tmp_path / f"org-{owner.org_id}_2026-11-30.json").read_text())
    assert anchor["chain"] == chain_key_for(owner.org_id)
    assert anchor["org_slug"] == "acme"
    assert (anchor["seq"], anchor["hash"]) == (3, last.hash)
    assert anchor["published_at"] == DAY_ONE.isoformat()
    assert anchor["record_created_at"] == last.created_at.isoformat()
    mode = (tmp_path / names[0]).stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_a_second_run_the_same_day_adds_nothing_and_changes_nothing(tmp_path: Path, owner) -> None:
    audit_record(action="test.step", actor=owner)
    [path] = audit_anchors_publish(directory=tmp_path, now=DAY_ONE).written
    before = path.read_bytes()
    audit_record(action="test.later", actor=owner)
    again = audit_anchors_publish(directory=tmp_path, now=DAY_ONE.replace(hour=23))
    assert (again.written, again.already_there) == ([], [path])
    assert path.read_bytes() == before
    assert [p.name for p in audit_anchors_publish(directory=tmp_path, now=DAY_TWO).written] == [
        f"org-{owner.org_id}_2026-12-01.json"
    ]


def test_a_chain_resealed_with_the_key_passes_the_walk_but_not_the_anchors(
    tmp_path: Path, owner
) -> None:
    for i in range(5):
        audit_record(action=f"test.step{i + 1}", actor=owner)
    audit_anchors_publish(directory=tmp_path, now=DAY_ONE)  # head at seq 5
    for i in range(5, 7):
        audit_record(action=f"test.step{i + 1}", actor=owner)
    audit_anchors_publish(directory=tmp_path, now=DAY_TWO)  # head at seq 7
    assert "2 anchors checked, no broken link" in verify("--anchors", str(tmp_path))

    chain = chain_key_for(owner.org_id)
    rewrite_with_the_key(chain=chain, seq=2, action="test.innocent")

    assert "no broken link" in verify()  # the HMAC chain alone is fooled
    message, err = verify_fails("--anchors", str(tmp_path))
    day_one = f"org-{owner.org_id}_2026-11-30.json"
    assert f"2 of 2 anchors do not match, the first {day_one}" in message
    first, second = err.strip().splitlines()
    assert first.startswith(f"MISMATCH anchor {day_one}: chain '{chain}' seq 5 was published")
    assert second.startswith(f"MISMATCH anchor org-{owner.org_id}_2026-12-01.json")


def test_records_cut_from_the_end_do_not_match_the_anchor(tmp_path: Path, owner) -> None:
    records = [audit_record(action="test.step", actor=owner) for _ in range(4)]
    audit_anchors_publish(directory=tmp_path, now=DAY_ONE)
    chain = chain_key_for(owner.org_id)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditrecord DISABLE TRIGGER USER")
        cursor.execute("DELETE FROM audit_auditrecord WHERE seq > 2 AND chain = %s", [chain])
        cursor.execute("ALTER TABLE audit_auditrecord ENABLE TRIGGER USER")
    AuditChain.objects.filter(key=chain).update(last_seq=2, last_hash=records[1].hash)
    assert "no broken link" in verify()
    _, err = verify_fails("--anchors", str(tmp_path))
    assert f"chain '{chain}' has no record at seq 4" in err


def test_only_the_requested_organizations_anchors_are_checked(
    tmp_path: Path, owner, outsider
) -> None:
    audit_record(action="test.step", actor=owner)
    audit_record(action="test.step", actor=outsider)
    audit_record(action="test.step", actor=outsider)
    audit_anchors_publish(directory=tmp_path, now=DAY_ONE)
    rewrite_with_the_key(chain=chain_key_for(outsider.org_id), seq=1, action="test.innocent")
    assert "1 anchors checked, no broken link" in verify(
        "--org", "acme", "--anchors", str(tmp_path)
    )
    assert (
        "1 of 1 anchors do not match"
        in verify_fails("--org", "other", "--anchors", str(tmp_path))[0]
    )


def test_an_unreadable_anchor_or_a_missing_directory_fails(tmp_path: Path, owner) -> None:
    audit_record(action="test.step", actor=owner)
    (tmp_path / "org-1_2026-11-30.json").write_text("{not json")
    assert "unreadable" in verify_fails("--anchors", str(tmp_path))[1]
    assert "no such directory" in verify_fails("--anchors", str(tmp_path / "nope"))[1]


def test_beat_publishes_daily_to_the_configured_directory(tmp_path: Path, owner, settings) -> None:
    entry = celery_app.conf.beat_schedule["audit-publish-anchors"]
    assert entry["task"] == audit_anchors_publish_task.name
    audit_record(action="test.step", actor=owner)
    settings.AUDIT_ANCHOR_DIR = str(tmp_path / "anchors")
    assert audit_anchors_publish_task.apply().get() == {"written": 1, "already_there": 0}
    assert audit_anchors_publish_task.apply().get() == {"written": 0, "already_there": 1}
    settings.AUDIT_ANCHOR_DIR = ""
    assert audit_anchors_publish_task.apply().get() == {"written": 0, "already_there": 0}


@pytest.fixture
def append_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory where files can be added but not removed, renamed or replaced (Linux ext4)."""
    directory = tmp_path / "worm"
    directory.mkdir()
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    made = subprocess.run(["chattr", "+a", str(directory)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot make an append-only directory here: {made.stderr!r}")
    yield directory
    subprocess.run(["chattr", "-a", str(directory)], check=True)


def test_publishing_works_in_an_append_only_directory(append_only_dir: Path, owner) -> None:
    audit_record(action="test.step", actor=owner)
    [path] = audit_anchors_publish(directory=append_only_dir, now=DAY_ONE).written
    audit_record(action="test.later", actor=owner)
    assert audit_anchors_publish(directory=append_only_dir, now=DAY_ONE).already_there == [path]
    assert json.loads(path.read_text())["seq"] == 1
    with pytest.raises(PermissionError):
        path.unlink()
    assert "1 anchors checked, no broken link" in verify("--anchors", str(append_only_dir))


def test_the_nightly_check_also_compares_the_published_heads(
    tmp_path: Path, owner, settings
) -> None:
    for _ in range(3):
        audit_record(action="test.step", actor=owner)
    audit_anchors_publish(directory=tmp_path, now=DAY_ONE)
    settings.AUDIT_ANCHOR_DIR = str(tmp_path)
    assert audit_chains_check()["anchors"] == 1
    rewrite_with_the_key(chain=chain_key_for(owner.org_id), seq=1, action="test.innocent")
    outcome = audit_chains_check()
    assert (outcome["ok"], outcome["broken"]) == (False, [])
    [mismatch] = outcome["anchor_mismatches"]
    assert mismatch.startswith(f"anchor org-{owner.org_id}_2026-11-30.json: ")
    assert AuditRecord.objects.get(action="audit.verify_failed").detail == outcome
