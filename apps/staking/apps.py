"""Staking with Kraken Earn: strategies, allocations, rewards and the auto-stake workflow action."""

from decimal import Decimal

from django.apps import AppConfig


class StakingConfig(AppConfig):
    name = "apps.staking"
    label = "staking"

    def ready(self) -> None:
        from apps.approvals.registry import TierSpec, approval_kind_register
        from apps.exchange.hooks import operation_hook_register
        from apps.exchange.models import Kind
        from apps.notifications.kinds import notification_kind_register
        from apps.orgs.permissions import Role
        from apps.staking import services, workflow_actions

        for kind in (Kind.EARN_ALLOCATE, Kind.EARN_DEALLOCATE):
            operation_hook_register(
                kind,
                on_done=services.on_operation_done,
                on_rejected=services.on_operation_refused,
                on_not_placed=services.on_operation_not_placed,
            )
        # Below the lowest tier's threshold a treasurer's request goes straight to Kraken;
        # at or above it, the tier's approvals (owners edit the tiers under Approvals).
        tiers = (
            TierSpec(Decimal("10000"), 1, (Role.OWNER, Role.APPROVER)),
            TierSpec(Decimal("250000"), 2, (Role.OWNER, Role.APPROVER), owner_required=True),
        )
        for key, label in (
            (services.KIND_ALLOCATE, "Earn allocation"),
            (services.KIND_DEALLOCATE, "Earn deallocation"),
        ):
            approval_kind_register(
                key,
                services.approval_handler,
                services.approval_describe,
                label=label,
                fingerprint=services.approval_fingerprint,
                default_tiers=tiers,
                default_expiry_hours=24,
            )
        notification_kind_register(
            "staking.completed", "Earn allocation or deallocation finished", default_email=False
        )
        notification_kind_register("staking.rewards", "Daily Earn rewards", default_email=False)
        # The scheduled workflows' "keep X spendable, allocate the rest to strategy S".
        workflow_actions.register()
