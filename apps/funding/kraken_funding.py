"""Every Kraken funding call of the treasury, in one module.

Kraken's legacy funding endpoints (DepositMethods, DepositAddresses, DepositStatus,
WithdrawMethods, WithdrawAddresses, WithdrawInfo, WithdrawStatus; Withdraw, WithdrawCancel and
AccountTransfer as exchange operations) are read and written only here, so that Kraken's newer
Funding API (stable method/address ids, fee tokens, cursor pagination; FUNDING-EARN.md) can
replace them by changing this one module: the rest of apps/funding sees the dataclasses below,
never Kraken's shapes.

Reads go through `apps.exchange.services.private_read` (apps/exchange is the only caller of
Kraken's private methods); writes are parameter builders for `operation_prepare`, which sends
them exactly once. Amounts are Decimal end to end: Kraken's strings are parsed with
`apps.core.amounts.to_decimal`, never through float.

What the legacy API makes hard, and how it is handled here:
- A withdrawal destination is a *key name* chosen on Kraken's website; the key can be
  re-pointed to another address later. Withdraw takes `address` as a check ("the address
  must match the one stored under key"): the portal always sends the address frozen at
  approval, so a re-pointed key is refused by Kraken instead of paying a new address.
- The fee is only known from WithdrawInfo at preview time and may rise before the send:
  `max_fee` makes Kraken refuse a withdrawal whose fee went above what was approved.
- Withdraw answers only a refid; a lost answer is found again in WithdrawStatus by key, amount
  and time (apps.exchange.finders), which is why one withdrawal per account, asset and key is
  in flight.
- WithdrawStatus reports Kraken's own hold (`status-prop` onhold: a compliance review, or a
  Kraken Organizations approval queue) only as a property beside the status.
- AccountTransfer has no status call: a `pending` answer is followed through the ledger's
  transfer entries (type=transfer, refid = transfer_id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from apps.core.amounts import to_decimal
from apps.exchange.models import Kind
from apps.exchange.services import deposit_address_new, private_read
from apps.kraken.naming import normalize_asset
from apps.vault.models import Credential

# Kraken's withdrawal statuses, and the properties that qualify them.
FINAL_STATUSES = frozenset({"Success", "Failure"})
HOLD_PROPS = frozenset({"onhold", "return"})
CANCEL_PROPS = frozenset({"canceled", "cancel-pending"})


def _dec(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return to_decimal(str(value))
    except (TypeError, ValueError):
        return None


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), tz=UTC) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


# --- shapes the rest of the app sees ---------------------------------------------------------


@dataclass(frozen=True)
class WithdrawAddress:
    asset: str  # Kraken's name (XBT), as sent back in Withdraw
    method: str
    key: str  # Kraken's name for the destination
    address: str
    verified: bool

    @property
    def symbol(self) -> str:
        """The portal's name of the asset (BTC)."""
        return normalize_asset(self.asset)


@dataclass(frozen=True)
class WithdrawPreview:
    method: str
    fee: Decimal
    amount_received: Decimal
    limit: Decimal | None  # what may be withdrawn now (Kraken's `limit`)


@dataclass(frozen=True)
class WithdrawMethod:
    asset: str
    method: str
    network: str
    minimum: Decimal | None


@dataclass(frozen=True)
class WithdrawalState:
    refid: str
    asset: str
    key: str
    amount: Decimal | None  # net of the fee, as Kraken reports it
    fee: Decimal | None
    status: str  # Initial | Pending | Settled | Success | Failure
    status_prop: str  # "", onhold, return, cancel-pending, canceled, cancel-denied
    txid: str
    time: datetime | None

    @property
    def on_hold(self) -> bool:
        return self.status_prop in HOLD_PROPS

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class DepositMethod:
    method: str
    minimum: Decimal | None
    fee: Decimal | None
    gen_address: bool


@dataclass(frozen=True)
class DepositAddress:
    address: str
    tag: str
    new: bool
    expires: datetime | None


@dataclass(frozen=True)
class DepositState:
    refid: str
    txid: str
    asset: str
    method: str
    amount: Decimal | None
    fee: Decimal | None
    status: str
    status_prop: str
    time: datetime | None


@dataclass(frozen=True)
class LedgerTransfer:
    ledger_id: str
    refid: str
    asset: str
    amount: Decimal | None
    time: datetime | None


# --- reads -----------------------------------------------------------------------------------


def withdraw_addresses(*, credential: Credential, asset: str = "") -> list[WithdrawAddress]:
    params = {"asset": asset} if asset else {}
    answer = private_read(credential=credential, method="WithdrawAddresses", params=params) or []
    return [
        WithdrawAddress(
            asset=str(entry.get("asset", "")),
            method=str(entry.get("method", "")),
            key=str(entry.get("key", "")),
            address=str(entry.get("address", "")),
            verified=bool(entry.get("verified")),
        )
        for entry in answer
        if isinstance(entry, dict)
    ]


def withdraw_methods(*, credential: Credential, asset: str) -> list[WithdrawMethod]:
    answer = private_read(credential=credential, method="WithdrawMethods", params={"asset": asset})
    return [
        WithdrawMethod(
            asset=normalize_asset(str(entry.get("asset", asset))),
            method=str(entry.get("method", "")),
            network=str(entry.get("network", "")),
            minimum=_dec(entry.get("minimum")),
        )
        for entry in answer or []
        if isinstance(entry, dict)
    ]


def withdraw_info(
    *, credential: Credential, asset: str, key: str, amount: Decimal
) -> WithdrawPreview:
    """Kraken's preview of a withdrawal: the fee now, what arrives, and the limit."""
    answer = private_read(
        credential=credential,
        method="WithdrawInfo",
        params={"asset": asset, "key": key, "amount": amount},
    )
    fee = _dec(answer.get("fee")) or Decimal(0)
    received = _dec(answer.get("amount"))
    return WithdrawPreview(
        method=str(answer.get("method", "")),
        fee=fee,
        amount_received=received if received is not None else amount - fee,
        limit=_dec(answer.get("limit")),
    )


def withdraw_status(
    *, credential: Credential, asset: str, start: datetime | None = None
) -> list[WithdrawalState]:
    params: dict[str, Any] = {"asset": asset}
    if start is not None:
        params["start"] = int(start.timestamp())
    answer = private_read(credential=credential, method="WithdrawStatus", params=params)
    if isinstance(answer, dict):  # the paginated shape
        answer = answer.get("withdrawals") or answer.get("withdraw") or []
    return [
        WithdrawalState(
            refid=str(entry.get("refid", "")),
            asset=normalize_asset(str(entry.get("asset", asset))),
            key=str(entry.get("key", "")),
            amount=_dec(entry.get("amount")),
            fee=_dec(entry.get("fee")),
            status=str(entry.get("status", "")),
            status_prop=str(entry.get("status-prop") or ""),
            txid=str(entry.get("txid") or ""),
            time=_time(entry.get("time")),
        )
        for entry in answer or []
        if isinstance(entry, dict)
    ]


def deposit_methods(*, credential: Credential, asset: str) -> list[DepositMethod]:
    answer = private_read(credential=credential, method="DepositMethods", params={"asset": asset})
    return [
        DepositMethod(
            method=str(entry.get("method", "")),
            minimum=_dec(entry.get("minimum")),
            fee=_dec(entry.get("fee")),
            gen_address=bool(entry.get("gen-address")),
        )
        for entry in answer or []
        if isinstance(entry, dict)
    ]


def deposit_addresses(
    *, credential: Credential, asset: str, method: str, new: bool = False
) -> list[DepositAddress]:
    """The account's deposit addresses for `asset` and `method`; `new` asks Kraken for another
    one (not idempotent, but harmless: a lost answer leaves one unused address more)."""
    if new:
        answer = deposit_address_new(credential=credential, asset=asset, method=method)
    else:
        answer = private_read(
            credential=credential,
            method="DepositAddresses",
            params={"asset": asset, "method": method},
        )
    return [
        DepositAddress(
            address=str(entry.get("address", "")),
            tag=str(entry.get("tag") or entry.get("memo") or ""),
            new=bool(entry.get("new")),
            expires=_time(entry.get("expiretm")) if str(entry.get("expiretm")) != "0" else None,
        )
        for entry in answer or []
        if isinstance(entry, dict)
    ]


def deposit_status(*, credential: Credential, asset: str = "") -> list[DepositState]:
    params = {"asset": asset} if asset else {}
    answer = private_read(credential=credential, method="DepositStatus", params=params)
    if isinstance(answer, dict):
        answer = answer.get("deposit") or []
    return [
        DepositState(
            refid=str(entry.get("refid", "")),
            txid=str(entry.get("txid") or ""),
            asset=normalize_asset(str(entry.get("asset", ""))),
            method=str(entry.get("method", "")),
            amount=_dec(entry.get("amount")),
            fee=_dec(entry.get("fee")),
            status=str(entry.get("status", "")),
            status_prop=str(entry.get("status-prop") or ""),
            time=_time(entry.get("time")),
        )
        for entry in answer or []
        if isinstance(entry, dict)
    ]


def ledger_transfers(
    *, credential: Credential, asset: str, start: datetime | None = None
) -> list[LedgerTransfer]:
    """The account's transfer ledger entries (how a `pending` AccountTransfer is followed)."""
    params: dict[str, Any] = {"asset": asset, "type": "transfer"}
    if start is not None:
        params["start"] = int(start.timestamp())
    answer = private_read(credential=credential, method="Ledgers", params=params) or {}
    return [
        LedgerTransfer(
            ledger_id=str(ledger_id),
            refid=str(entry.get("refid", "")),
            asset=normalize_asset(str(entry.get("asset", asset))),
            amount=_dec(entry.get("amount")),
            time=_time(entry.get("time")),
        )
        for ledger_id, entry in (answer.get("ledger") or {}).items()
        if isinstance(entry, dict)
    ]


# --- writes: the parameters of the exchange operations ----------------------------------------

WITHDRAW = Kind.WITHDRAW
WITHDRAW_CANCEL = Kind.WITHDRAW_CANCEL
ACCOUNT_TRANSFER = Kind.ACCOUNT_TRANSFER


def withdraw_params(
    *, asset: str, key: str, address: str, amount: Decimal, max_fee: Decimal
) -> dict[str, Any]:
    """Withdraw: the key, and the address it pointed to when approved (Kraken refuses a key
    re-pointed since), and the approved maximum fee (Kraken refuses a higher fee)."""
    params: dict[str, Any] = {"asset": asset, "key": key, "amount": amount, "max_fee": max_fee}
    if address:
        params["address"] = address
    return params


def withdraw_cancel_params(*, asset: str, refid: str) -> dict[str, Any]:
    return {"asset": asset, "refid": refid}


def transfer_params(*, asset: str, amount: Decimal, from_id: str, to_id: str) -> dict[str, Any]:
    """AccountTransfer, sent with the master account's key: `from`/`to` are Kraken's account
    ids (IIBANs) from the portal's account records."""
    return {"asset": asset, "amount": amount, "from": from_id, "to": to_id}


def withdraw_result_refid(result: Any) -> str:
    """The refid of a Withdraw answer (or of what the finder found)."""
    return str((result or {}).get("refid") or "") if isinstance(result, dict) else ""


def transfer_result(result: Any) -> tuple[str, str]:
    """(transfer_id, status) of an AccountTransfer answer: status complete | pending."""
    if not isinstance(result, dict):
        return "", ""
    return str(result.get("transfer_id") or ""), str(result.get("status") or "")


def withdraw_cancel_accepted(result: Any) -> bool:
    """WithdrawCancel answers true/false; the finder answers {"cancelled": bool}."""
    if isinstance(result, dict):
        return bool(result.get("cancelled"))
    return result is True or str(result).lower() == "true"


# What Kraken's refusals of a funding call mean to the person who asked (Kraken's error string
# prefix → a sentence). Anything else shows Kraken's own hint.
REFUSALS: dict[str, str] = {
    "EFunding:Max fee exceeded": (
        "Kraken's fee is now above the approved maximum fee, so Kraken refused the withdrawal; "
        "nothing moved. Request it again to approve the new fee."
    ),
    "EFunding:Invalid withdrawal address": (
        "The withdrawal key now points to another address than the one approved, so Kraken "
        "refused the withdrawal; nothing moved. Review the address book."
    ),
    "EFunding:Unknown withdraw key": (
        "Kraken no longer has this withdrawal key; nothing moved. Review the address book."
    ),
    "EFunding:Insufficient funds": "Not enough available on the account; nothing moved.",
    "EFunding:Limit exceeded": "Above Kraken's withdrawal limit for this account; nothing moved.",
    "EFunding:Invalid amount": "Kraken refused the amount (below the minimum?); nothing moved.",
    "EGeneral:Permission denied": (
        "The API key may not do this (check its permissions, and that transfers use the master "
        "account's key); nothing moved."
    ),
}


def refusal_text(code: str, hint: str = "") -> str:
    for prefix, text in REFUSALS.items():
        if code.startswith(prefix):
            return text
    return f"Kraken refused it ({code}). {hint}".strip()
