from django.apps import AppConfig


class VaultConfig(AppConfig):
    name = "apps.vault"
    label = "vault"

    def ready(self) -> None:
        from apps.orgs.signals import (
            kraken_account_archiving,
            membership_removed,
            membership_role_changed,
        )
        from apps.vault import checks  # noqa: F401  (registers the keyring check)
        from apps.vault.receivers import (
            on_kraken_account_archiving,
            on_membership_removed,
            on_membership_role_changed,
        )

        # A removed or demoted member's keys are restricted to what the new role allows, in
        # the change's own transaction (apps.orgs.signals).
        membership_removed.connect(
            on_membership_removed, dispatch_uid="vault.restrict-removed-member-keys"
        )
        membership_role_changed.connect(
            on_membership_role_changed, dispatch_uid="vault.restrict-demoted-member-keys"
        )
        # An account with active keys cannot be archived (its keys would keep acting on it).
        kraken_account_archiving.connect(
            on_kraken_account_archiving, dispatch_uid="vault.refuse-archiving-account-with-keys"
        )
