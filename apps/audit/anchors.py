"""Anchors: each chain's head, published daily outside the database, to catch a re-sealed chain.

The HMAC proves a record was sealed with the key, not that it is the record first written: an
insider who holds both the key and the database owner's password can change a record and
re-seal it and every later one, and `audit_verify` would pass. So once a day each chain's head
(sequence number and hash) is written to `AUDIT_ANCHOR_DIR`, storage meant to be write-once (an
object-locked bucket, a WORM mount, a host the portal can add to but not edit). A later rewrite
of any record at or before an anchored sequence number changes the hash at that number, and
`audit_verify --anchors DIR` names the anchor that no longer matches.

Files are only ever added: one per chain per day (`org-12_2026-12-01.json`), written whole,
read-only, and linked into place, which fails rather than overwrite a file that exists (see
`_write_once`). A second run on the same day leaves the day's file as it is.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.utils import timezone

from apps.audit.models import AuditChain, AuditRecord
from apps.orgs.models import Organization

ANCHOR_SUFFIX = ".json"


@dataclass(frozen=True)
class Anchor:
    """One published head: the record at `seq` in `chain` had `hash`."""

    chain: str
    seq: int
    hash: str
    published_at: str
    name: str  # the file's name, how a report refers to it


@dataclass
class AnchorPublication:
    written: list[Path] = field(default_factory=list)
    already_there: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class AnchorMismatch:
    name: str
    problem: str

    def __str__(self) -> str:
        return f"anchor {self.name}: {self.problem}"


@dataclass
class AnchorReport:
    checked: int = 0
    mismatches: list[AnchorMismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def anchor_file_name(*, chain: str, day: str) -> str:
    # "org:12" -> "org-12": a colon is not allowed in file names everywhere (SMB, S3 tools).
    return f"{chain.replace(':', '-')}_{day}{ANCHOR_SUFFIX}"


def _write_once(path: Path, content: bytes) -> bool:
    """Write `path` atomically unless it exists; True if written. Never replaces a file.

    The content is written to an unnamed file (O_TMPFILE), made read-only, and then linked
    under its name: link(), unlike rename(), refuses an existing target, so a second publisher
    or a second run the same day cannot replace what was published, and nothing needs removing
    afterwards, which an append-only directory (`chattr +a`) would refuse. Where unnamed files
    are not supported, a temporary name is used instead (the directory must allow removing it).
    """
    try:
        descriptor = os.open(path.parent, os.O_TMPFILE | os.O_WRONLY, 0o444)
    except (AttributeError, OSError):
        return _write_once_named(path, content)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        _write_all(descriptor, content)
        try:
            # With a directory descriptor CPython calls linkat(), which can follow the /proc
            # link to the unnamed file; plain link() cannot.
            os.link(
                f"/proc/self/fd/{descriptor}", path.name, dst_dir_fd=directory, follow_symlinks=True
            )
        except FileExistsError:
            return False
        os.fsync(directory)
    finally:
        os.close(descriptor)
        os.close(directory)
    return True


def _write_once_named(path: Path, content: bytes) -> bool:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".anchor-", suffix=".tmp")
    try:
        try:
            os.fchmod(descriptor, 0o444)
            _write_all(descriptor, content)
        finally:
            os.close(descriptor)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
    finally:
        os.unlink(temporary)
    _sync_directory(path.parent)
    return True


def _write_all(descriptor: int, content: bytes) -> None:
    view = memoryview(content)
    while view:
        view = view[os.write(descriptor, view) :]
    os.fsync(descriptor)


def _sync_directory(directory: Path) -> None:
    """The new name itself survives a crash."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def audit_anchors_publish(*, directory: Path, now: datetime | None = None) -> AnchorPublication:
    """Write today's anchor of every chain that has records into `directory`."""
    now = now or timezone.now()
    day = now.astimezone(UTC).date().isoformat()
    directory.mkdir(parents=True, exist_ok=True)
    slugs: dict[int | None, str] = dict(Organization.objects.values_list("pk", "slug"))
    publication = AnchorPublication()
    for key in AuditChain.objects.order_by("key").values_list("key", flat=True):
        # The newest record, not the head row: the portal's database role may update head rows,
        # but it cannot change a record (see apps/audit/roles.py).
        head = AuditRecord.objects.filter(chain=key).order_by("-seq").first()
        if head is None:
            continue
        content: dict[str, Any] = {
            "chain": key,
            "org_id": head.org_id,
            "org_slug": slugs.get(head.org_id),
            "seq": head.seq,
            "hash": head.hash,
            "record_created_at": head.created_at.isoformat(),
            "published_at": now.isoformat(),
        }
        path = directory / anchor_file_name(chain=key, day=day)
        encoded = (json.dumps(content, indent=2, sort_keys=True) + "\n").encode()
        if _write_once(path, encoded):
            publication.written.append(path)
        else:
            publication.already_there.append(path)
    return publication


def _anchors_read(directory: Path) -> tuple[list[Anchor], list[AnchorMismatch]]:
    anchors: list[Anchor] = []
    unreadable: list[AnchorMismatch] = []
    for path in sorted(directory.glob("*" + ANCHOR_SUFFIX)):
        if path.name.startswith("."):
            continue
        try:
            data = json.loads(path.read_text())
            anchors.append(
                Anchor(
                    chain=str(data["chain"]),
                    seq=int(data["seq"]),
                    hash=str(data["hash"]),
                    published_at=str(data["published_at"]),
                    name=path.name,
                )
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            unreadable.append(AnchorMismatch(path.name, f"unreadable ({error})"))
    return anchors, unreadable


def audit_anchors_check(*, directory: Path, chains: set[str] | None = None) -> AnchorReport:
    """Compare every published anchor (of `chains`, or all) with the record at its sequence.

    Mismatches come oldest publication first, so the first one names the earliest point the
    trail is known to have been rewritten after. Checked together with the chain walk
    (`audit_chain_verify`): that proves each stored hash seals its record and links to the one
    before; this proves the stored hash at each anchored point is the one published then.
    """
    report = AnchorReport()
    if not directory.is_dir():
        report.mismatches.append(AnchorMismatch(str(directory), "no such directory"))
        return report
    anchors, report.mismatches = _anchors_read(directory)
    if chains is not None:
        anchors = [anchor for anchor in anchors if anchor.chain in chains]
    wanted: dict[str, set[int]] = {}
    for anchor in anchors:
        wanted.setdefault(anchor.chain, set()).add(anchor.seq)
    stored: dict[tuple[str, int], str] = {}
    for chain, seqs in wanted.items():
        rows = AuditRecord.objects.filter(chain=chain, seq__in=seqs).values_list("seq", "hash")
        stored.update(((chain, seq), hash_) for seq, hash_ in rows)
    for anchor in sorted(anchors, key=lambda a: (a.published_at, a.chain, a.seq)):
        report.checked += 1
        found = stored.get((anchor.chain, anchor.seq))
        if found is None:
            problem = f"chain {anchor.chain!r} has no record at seq {anchor.seq}"
        elif found != anchor.hash:
            problem = (
                f"chain {anchor.chain!r} seq {anchor.seq} was published with hash "
                f"{anchor.hash[:16]}… on {anchor.published_at}, the database now has "
                f"{found[:16]}…"
            )
        else:
            continue
        report.mismatches.append(AnchorMismatch(anchor.name, problem))
    return report
