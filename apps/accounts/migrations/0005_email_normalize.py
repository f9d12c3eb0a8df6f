"""Every stored account email in the portal's one spelling (apps.core.emails.email_normalize).

Sign-in, invitations and the throttles compare addresses in that spelling (lower case, the
domain in canonical Unicode), but accounts created before IDN addresses were normalised may
hold another ("Ops@xn--bcher-kva.example"), which no typed address then matches exactly.

Collisions: if two accounts normalise to the same address, both are left as they are and a
warning names them. Which account keeps the address is not the migration's to decide: each has
its own password, second factor, memberships, keys and audit history, so rewriting one would
violate the unique email (or silently merge two people). An operator resolves it: renames or
deactivates all but one, and normalises the one that stays by hand.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import migrations

from apps.core.emails import email_normalize

COLLISION = (
    "WARNING: accounts {ids} have email addresses that are one address ({address}); "
    "left unchanged. Rename or deactivate all but one, then normalise the rest by hand."
)


def forward(apps: Any, schema_editor: Any) -> None:
    User = apps.get_model("accounts", "User")
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for pk, email in User.objects.values_list("pk", "email").iterator():
        groups[email_normalize(email)].append((pk, email))
    for address, rows in groups.items():
        if len(rows) > 1:
            print(COLLISION.format(ids=sorted(pk for pk, _ in rows), address=address))
            continue
        [(pk, email)] = rows
        if email != address:
            User.objects.filter(pk=pk).update(email=address)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_second_factor_secrets_at_rest")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop, elidable=True)]
