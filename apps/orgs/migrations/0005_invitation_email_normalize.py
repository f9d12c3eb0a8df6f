"""Every stored invitation address in the portal's one spelling (apps.core.emails.email_normalize),
so an invitation issued before IDN addresses were normalised matches its invitee like a new one.

Collisions: an organization may hold one open invitation per address. If two open invitations
of one organization normalise to the same address, both are left as they are and a warning
names them: which one stands (their roles may differ) is the organization's decision, and
rewriting both would break that rule. An admin revokes one. Closed (accepted or revoked)
invitations are history and are normalised regardless.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import migrations

from apps.core.emails import email_normalize

COLLISION = (
    "WARNING: open invitations {ids} of organization {org} are to one address ({address}); "
    "left unchanged. Revoke all but one."
)


def forward(apps: Any, schema_editor: Any) -> None:
    Invitation = apps.get_model("orgs", "Invitation")
    open_groups: dict[tuple[int, str], list[tuple[int, str]]] = defaultdict(list)
    rows = Invitation.objects.values_list("pk", "org_id", "email", "accepted_at", "revoked_at")
    for pk, org_id, email, accepted_at, revoked_at in rows.iterator():
        address = email_normalize(email)
        if accepted_at is None and revoked_at is None:
            open_groups[(org_id, address)].append((pk, email))
        elif email != address:
            Invitation.objects.filter(pk=pk).update(email=address)
    for (org_id, address), group in open_groups.items():
        if len(group) > 1:
            print(COLLISION.format(ids=sorted(pk for pk, _ in group), org=org_id, address=address))
            continue
        [(pk, email)] = group
        if email != address:
            Invitation.objects.filter(pk=pk).update(email=address)


class Migration(migrations.Migration):
    dependencies = [("orgs", "0004_kraken_accounts")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop, elidable=True)]
