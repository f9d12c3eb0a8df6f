from django.apps import AppConfig


class VaultConfig(AppConfig):
    name = "apps.vault"
    label = "vault"

    def ready(self) -> None:
        from apps.orgs.signals import membership_removed
        from apps.vault import checks  # noqa: F401  (registers the keyring check)
        from apps.vault.receivers import on_membership_removed

        # A removed member's keys are revoked in the removal's transaction (apps.orgs.signals).
        membership_removed.connect(
            on_membership_removed, dispatch_uid="vault.revoke-removed-member-keys"
        )
