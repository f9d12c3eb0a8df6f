# Step 2 of 3: existing keys go to a master account created for each organization that has
# keys ("Main account", the deployment's KRAKEN_TIER, the tier every key was assumed to have
# until now), so an existing installation keeps working. Its Kraken id is left for an owner
# to enter (Kraken's API does not return it). The reverse step only empties the column.

from django.conf import settings
from django.db import migrations

MAIN_ACCOUNT = "Main account"
TIERS = ("starter", "intermediate", "pro")  # apps.kraken.ratelimit.TIERS, frozen here


def forwards(apps, schema_editor):
    Credential = apps.get_model("vault", "Credential")
    KrakenAccount = apps.get_model("orgs", "KrakenAccount")
    tier = getattr(settings, "KRAKEN_TIER", "starter")
    if tier not in TIERS:
        # The client refused such a tier before; the most conservative one is the safe guess.
        tier = "starter"
    org_ids = (
        Credential.objects.filter(account__isnull=True)
        .values_list("org_id", flat=True)
        .distinct()
        .order_by("org_id")
    )
    for org_id in org_ids:
        master = KrakenAccount.objects.filter(
            org_id=org_id, kind="master", archived_at__isnull=True
        ).first()
        if master is None:
            master = KrakenAccount.objects.create(
                org_id=org_id, label=MAIN_ACCOUNT, kind="master", verification_tier=tier
            )
        Credential.objects.filter(org_id=org_id, account__isnull=True).update(account=master)


def backwards(apps, schema_editor):
    apps.get_model("vault", "Credential").objects.update(account=None)


class Migration(migrations.Migration):
    dependencies = [
        ("orgs", "0004_kraken_accounts"),
        ("vault", "0003_credential_account"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
