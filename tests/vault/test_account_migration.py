"""The upgrade: keys stored before accounts existed move to a "Main account" master per
organization, with the deployment's KRAKEN_TIER, and keep working."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

# The schema just before accounts: main's memberships-with-status and cancel-only keys.
BEFORE = [
    ("orgs", "0003_membership_status_and_overprivileged_keys"),
    ("vault", "0002_credential_cancel_only_refused_and_reason"),
]
AFTER = [("orgs", "0004_kraken_accounts"), ("vault", "0005_credential_account_required")]


def migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture(autouse=True)
def latest_schema_afterwards(transactional_db: Any) -> Iterator[None]:
    """The tests after this one need every migration, including those later than AFTER (orgs
    0005 onwards): the test database is shared by the whole run."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_existing_keys_go_to_a_main_account_per_organization(settings: Any) -> None:
    settings.KRAKEN_TIER = "pro"
    old = migrate(BEFORE)
    try:
        organization = old.get_model("orgs", "Organization")
        membership = old.get_model("orgs", "Membership")
        user = old.get_model("accounts", "User")
        credential = old.get_model("vault", "Credential")
        with_keys = organization.objects.create(name="Keys", slug="keys")
        organization.objects.create(name="None", slug="none")  # an organization without keys
        owner = membership.objects.create(
            org=with_keys, user=user.objects.create(email="o@keys.test"), role="owner"
        )
        trader = membership.objects.create(
            org=with_keys, user=user.objects.create(email="t@keys.test"), role="trader"
        )
        for member, use, shared in ((owner, "trading", True), (trader, "trading", False)):
            credential.objects.create(
                org=with_keys,
                owner=member,
                label=f"{member.role} key",
                api_key=f"key-{member.role}",
                account_label="main",
                use=use,
                is_shared_desk_key=shared,
            )
    finally:
        new = migrate(AFTER)
        # Going back to BEFORE also unapplied the apps that depend on accounts (exchange):
        # bring every app back to its latest migration, or later tests find no tables.
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    account = new.get_model("orgs", "KrakenAccount")
    credential = new.get_model("vault", "Credential")
    (main,) = account.objects.all()
    assert (main.org.slug, main.label, main.kind) == ("keys", "Main account", "master")
    assert (main.verification_tier, main.kraken_id, main.parent_id) == ("pro", "", None)
    assert set(credential.objects.values_list("account_id", flat=True)) == {main.pk}
    # The shared desk key is now the account's designated key.
    assert credential.objects.get(label="owner key").designated
    assert not credential.objects.get(label="trader key").designated
    assert not account.objects.filter(org__slug="none").exists()
