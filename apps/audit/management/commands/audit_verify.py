"""`manage.py audit_verify [--org SLUG]`: recompute every audit chain and name the first break."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.selectors import audit_chains_verify
from apps.orgs.models import Organization


class Command(BaseCommand):
    help = (
        "Walk every audit chain in sequence order, recompute each record's HMAC and its link to "
        "the previous record, check that no sequence number is missing, and name the first "
        "broken link. Exits with status 1 when any chain is broken."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", metavar="SLUG", help="Verify only this organization's chain.")

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
        if broken:
            raise CommandError(
                f"{len(broken)} of {len(reports)} chains broken; {total} records verified.",
                returncode=1,
            )
        self.stdout.write(f"OK: {len(reports)} chains, {total} records verified, no broken link.")
