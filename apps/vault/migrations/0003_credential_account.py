# Every credential belongs to one Kraken account (issue 10 §1), and the shared desk key becomes
# the key designated for its account and use. Step 1 of 3: the nullable column and the rename.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orgs", "0004_kraken_accounts"),
        ("vault", "0002_credential_cancel_only_refused_and_reason"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="credential",
            name="vault_one_active_personal_key_per_use",
        ),
        migrations.RemoveConstraint(
            model_name="credential",
            name="vault_one_active_desk_key_per_use",
        ),
        migrations.RenameField(
            model_name="credential",
            old_name="is_shared_desk_key",
            new_name="designated",
        ),
        migrations.AddField(
            model_name="credential",
            name="account",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="credentials",
                to="orgs.krakenaccount",
            ),
        ),
    ]
