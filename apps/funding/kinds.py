"""What the treasury registers with the platform at start-up (FundingConfig.ready): its
approval kinds with their default policies, its notification kinds, and the exchange result
hooks that move withdrawals and transfers along."""

from __future__ import annotations

from decimal import Decimal

from apps.approvals.registry import TierSpec, approval_kind_register
from apps.exchange.hooks import operation_hook_register
from apps.exchange.models import AccountBalance, Kind, LedgerEntry
from apps.exchange.streams.hooks import stream_hook_register
from apps.funding import deposits, live
from apps.funding.services import destinations, transfers, withdrawals
from apps.notifications.kinds import notification_kind_register
from apps.orgs.permissions import Role

APPROVERS = (Role.OWNER, Role.APPROVER)

# The example default of issue 12 §4, in the policy's currency (the reporting currency): up to
# 10,000 one approver; above it two; above 1,000,000 two including an owner. Values are kept
# with 8 decimals, so "above 10,000" starts at 10,000.00000001. Owners change it under
# Approvals → Policies (itself an approved change), and set the daily caps per asset there.
WITHDRAWAL_TIERS = (
    TierSpec(Decimal(0), 1, APPROVERS),
    TierSpec(Decimal("10000.00000001"), 2, APPROVERS),
    TierSpec(Decimal("1000000.00000001"), 2, APPROVERS, owner_required=True),
)
# Between the organization's own accounts: one approver, two above 1,000,000.
TRANSFER_TIERS = (
    TierSpec(Decimal(0), 1, APPROVERS),
    TierSpec(Decimal("1000000.00000001"), 2, APPROVERS),
)
# A new destination is where money may later go without further review of the address: one
# approver besides the requester.
ADDRESS_TIERS = (TierSpec(Decimal(0), 1, APPROVERS),)


def register() -> None:
    approval_kind_register(
        withdrawals.KIND,
        withdrawals.withdrawal_handler,
        withdrawals.withdrawal_describe,
        label="Withdrawal",
        fingerprint=withdrawals.withdrawal_fingerprint,
        current_value=withdrawals.withdrawal_current_value,
        default_tiers=WITHDRAWAL_TIERS,
        default_expiry_hours=24,
    )
    approval_kind_register(
        transfers.KIND,
        transfers.transfer_handler,
        transfers.transfer_describe,
        label="Transfer between accounts",
        fingerprint=transfers.transfer_fingerprint,
        current_value=transfers.transfer_current_value,
        default_tiers=TRANSFER_TIERS,
        default_expiry_hours=24,
    )
    approval_kind_register(
        destinations.KIND,
        destinations.address_handler,
        destinations.address_describe,
        label="Withdrawal address allow-listing",
        fingerprint=destinations.address_fingerprint,
        default_tiers=ADDRESS_TIERS,
        default_expiry_hours=72,
    )
    notification_kind_register("funding.withdrawal", "Withdrawals", default_email=True)
    notification_kind_register("funding.transfer", "Transfers", default_email=False)
    notification_kind_register("funding.deposit", "Deposits received", default_email=True)
    register_hooks()
    stream_hook_register(on_balance=on_balance, on_ledger=on_ledger)


def on_balance(balance: AccountBalance) -> None:
    live.balances_changed_on_commit(balance.account_id)


def on_ledger(entry: LedgerEntry) -> None:
    """Deposits are announced; a transfer entry completes a transfer Kraken answered
    `pending` (Kraken has no status call for transfers)."""
    if entry.type == "deposit":
        deposits.on_ledger_entry(entry)
    elif entry.type == "transfer" and entry.refid:
        transfers.transfer_complete_from_ledger(account_id=entry.account_id, refid=entry.refid)


def register_hooks() -> None:
    """The exchange result hooks (also called by tests that cleared them)."""
    operation_hook_register(
        Kind.WITHDRAW,
        on_done=withdrawals.on_withdraw_done,
        on_rejected=withdrawals.on_withdraw_rejected,
        on_not_placed=withdrawals.on_withdraw_not_placed,
    )
    operation_hook_register(
        Kind.WITHDRAW_CANCEL,
        on_done=withdrawals.on_cancel_done,
        on_rejected=withdrawals.on_cancel_failed,
        on_not_placed=withdrawals.on_cancel_failed,
    )
    operation_hook_register(
        Kind.ACCOUNT_TRANSFER,
        on_done=transfers.on_transfer_done,
        on_rejected=transfers.on_transfer_rejected,
        on_not_placed=transfers.on_transfer_not_placed,
    )
