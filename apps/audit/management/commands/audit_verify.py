"""`manage.py audit_verify [--org SLUG] [--anchors DIR]`: recompute every audit chain and name the
first break; with `--anchors`, also compare the chain with every head published to DIR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.anchors import audit_anchors_check
from apps.audit.chain import chain_key_for
from apps.audit.selectors import audit_chains_verify
from apps.orgs.models import Organization


class Command(BaseCommand):
    help = (
        "Walk every audit chain in sequence order, recompute each record's HMAC and its link to "
        "the previous record, check that no sequence number is missing, and name the first "
        "broken link. With --anchors DIR, also check that the record at each published "
        "anchor's sequence number still has the published hash, which catches a chain "
        "rewritten and re-sealed with the key. Exits with status 1 on any break or mismatch."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", metavar="SLUG", help="Verify only this organization's chain.")
        parser.add_argument(
            "--anchors",
            metavar="DIR",
            type=Path,
            help="Also check every chain head published to DIR (AUDIT_ANCHOR_DIR).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        org = None
        if options["org"]:
            org = Organization.objects.filter(slug=options["org"]).first()
            if org is None:
                raise CommandError(f"No organization with slug {options['org']!r}.")
        reports = audit_chains_verify(org=org)
        broken = [report for report in reports if not report.ok]
        for report in broken:
            self.stderr.write(
                f"BROKEN {report.broken} ({report.records} records verified before it)"
            )
        total = sum(report.records for report in reports)
        problems = []
        if broken:
            problems.append(f"{len(broken)} of {len(reports)} chains broken")
        anchors = ""
        if options["anchors"] is not None:
            chains = {chain_key_for(org.pk)} if org is not None else None
            anchor_report = audit_anchors_check(directory=options["anchors"], chains=chains)
            for mismatch in anchor_report.mismatches:
                self.stderr.write(f"MISMATCH {mismatch}")
            if anchor_report.mismatches:
                first = anchor_report.mismatches[0]
                problems.append(
                    f"{len(anchor_report.mismatches)} of {anchor_report.checked} anchors do not "
                    f"match, the first {first.name}"
                )
            anchors = f", {anchor_report.checked} anchors checked"
        if problems:
            raise CommandError(
                "; ".join(problems) + f"; {total} records verified{anchors}.", returncode=1
            )
        self.stdout.write(
            f"OK: {len(reports)} chains, {total} records verified{anchors}, no broken link."
        )
