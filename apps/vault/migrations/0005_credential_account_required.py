# Step 3 of 3: the account is required, and the "one active key" rules are per account: one
# personal key per member, account and use; one designated key per account and use.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orgs", "0004_kraken_accounts"),
        ("vault", "0004_credential_account_data"),
    ]

    operations = [
        migrations.AlterField(
            model_name="credential",
            name="account",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="credentials",
                to="orgs.krakenaccount",
            ),
        ),
        migrations.AddConstraint(
            model_name="credential",
            constraint=models.UniqueConstraint(
                condition=models.Q(("designated", False), ("status", "active")),
                fields=("owner", "account", "use"),
                name="vault_one_active_personal_key_per_account_use",
            ),
        ),
        migrations.AddConstraint(
            model_name="credential",
            constraint=models.UniqueConstraint(
                condition=models.Q(("designated", True), ("status", "active")),
                fields=("account", "use"),
                name="vault_one_designated_key_per_account_use",
            ),
        ),
        migrations.RemoveField(
            model_name="credential",
            name="account_label",
        ),
    ]
