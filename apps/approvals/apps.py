from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "apps.approvals"
    label = "approvals"

    def ready(self) -> None:
        from apps.approvals import live, policy_changes, role_grants, setting_changes
        from apps.approvals.policies import removal_warnings
        from apps.approvals.receivers import on_membership_removed
        from apps.approvals.registry import approval_kind_register
        from apps.notifications.kinds import notification_kind_register
        from apps.notifications.live import live_snapshot_register
        from apps.orgs.hooks import (
            removal_warnings_register,
            role_grant_gate_register,
            settings_loosening_gate_register,
        )
        from apps.orgs.signals import membership_removed

        notification_kind_register("approvals.needed", "Approval needed", default_email=True)
        notification_kind_register(
            "approvals.decided", "Your request was decided", default_email=True
        )
        notification_kind_register(
            "approvals.executed", "Approved change done", default_email=False
        )
        notification_kind_register("approvals.failed", "Approved change failed", default_email=True)
        notification_kind_register(
            "approvals.delayed",
            "A loosening (a policy or setting) is waiting out its delay",
            default_email=True,
            # Every owner must hear of it, so they can cancel: not a preference.
            email_required=True,
        )
        approval_kind_register(
            role_grants.KIND,
            role_grants.handler,
            role_grants.describe,
            label="Role grant",
            fingerprint=role_grants.fingerprint,
        )
        policy_changes.register()
        # orgs asks, approvals answers: the gate holds an admin's powerful grants, the warnings
        # say which removals would leave a policy unsatisfiable.
        role_grant_gate_register(role_grants.role_grant_gate)
        # Loosening an organization setting (currency, over-privileged keys, 2FA off) waits
        # like a policy loosening.
        settings_loosening_gate_register(setting_changes.org_setting_gate)
        removal_warnings_register(removal_warnings)
        live_snapshot_register("approvals", live.snapshot)
        # A removed member's requests are cancelled and their decisions voided, in the
        # removal's transaction.
        membership_removed.connect(
            on_membership_removed, dispatch_uid="approvals.release-removed-member"
        )
