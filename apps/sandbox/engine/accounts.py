"""Accounts, API keys, ledger entries, holds and fee lookups."""

from __future__ import annotations

import base64
import hashlib
import secrets
from decimal import Decimal
from typing import Any

from apps.sandbox.auth import ApiKey
from apps.sandbox.errors import KrakenError, invalid
from apps.sandbox.pairs import ASSETS, PAIRS, Pair, fee_for, fmt, resolve_asset
from apps.sandbox.ratelimit import TIERS, Tier
from apps.sandbox.util import to_decimal, ts_num

from .base import EngineBase
from .models import (
    ZERO,
    Account,
    Order,
    quantize_down,
)


def account_iiban(account_id: str) -> str:
    """A Kraken-style account id (IIBAN, "AA12 N84G ABCD EFGH") derived from the sandbox id,
    so it is stable across restarts and consumes no randomness of the seeded market."""
    digest = hashlib.sha256(account_id.encode()).digest()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    tail = "".join(alphabet[b % 32] for b in digest[:8])
    return f"AA{digest[8] % 90 + 10} N84G {tail[:4]} {tail[4:]}"


def normalise_account_ref(ref: str) -> str:
    return ref.replace(" ", "").upper()


class AccountsPart(EngineBase):
    def create_account(
        self,
        balances: dict[str, str] | None = None,
        tier: str | None = None,
        parent: str | None = None,
        account_id: str | None = None,
    ) -> Account:
        self._acct_seq += 1
        aid = account_id or f"AA{self._acct_seq:02d}{self.ids.kid('N')[1:6]}"
        tier_name = tier or self.default_tier
        if tier_name not in TIERS:
            raise invalid("tier")
        acct = Account(id=aid, tier=tier_name, parent=parent, iiban=account_iiban(aid))
        self.accounts[aid] = acct
        for name, amount in (balances or {}).items():
            asset_info = resolve_asset(name)
            value = to_decimal(amount)
            if asset_info is None or value is None or value < 0:
                raise invalid(name)
            if value:
                self.credit(acct, asset_info.id, value, "deposit", "", refid=self.ids.refid("Q"))
        return acct

    def find_account(self, ref: str) -> Account | None:
        """An account by sandbox id, IIBAN (with or without spaces, any case) or username."""
        if ref in self.accounts:
            return self.accounts[ref]
        wanted = normalise_account_ref(ref)
        for acct in self.accounts.values():
            if normalise_account_ref(acct.iiban) == wanted or (
                acct.username and acct.username == ref
            ):
                return acct
        return None

    def tier_of(self, acct: Account) -> Tier:
        # Subaccounts share the master account's trading limits.
        master = self.accounts.get(acct.parent) if acct.parent else None
        return TIERS[(master or acct).tier]

    def create_key(
        self,
        account_id: str,
        permissions: list[str],
        nonce_window: int = 0,
        otp: str | None = None,
        key: str | None = None,
        secret: str | None = None,
        name: str = "",
    ) -> ApiKey:
        if account_id not in self.accounts:
            raise KrakenError("EGeneral:Invalid arguments:account")
        api_key = ApiKey(
            key=key or base64.b64encode(secrets.token_bytes(42)).decode(),
            secret=secret or base64.b64encode(secrets.token_bytes(64)).decode(),
            account_id=account_id,
            permissions=set(permissions),
            nonce_window=int(nonce_window),
            otp=otp,
            name=name or f"api-key-{len(self.auth.keys) + 1}",
            created_at=self.now(),
        )
        self.auth.keys[api_key.key] = api_key
        return api_key

    # ------------------------------------------------------------------ ledger
    def _ledger(
        self,
        acct: Account,
        asset: str,
        amount: Decimal,
        fee: Decimal,
        ltype: str,
        subtype: str,
        refid: str,
    ) -> dict[str, Any]:
        asset_info = ASSETS.get(asset)
        places = asset_info.decimals if asset_info else 10
        shortfall = -(acct.balances.get(asset, ZERO) + amount - fee)
        flex = acct.auto_earn.get(asset, ZERO)
        if shortfall > 0 and flex > 0:
            # Spending auto-earn funds: they leave the flex wallet for the spot wallet first.
            moved = min(shortfall, flex)
            acct.auto_earn[asset] = flex - moved
            self.earn_wallet_entry(acct, asset, -moved, "flex", "autodeallocation", refid)
            self._ledger(acct, asset, moved, ZERO, "earn", "autodeallocation", refid)
        bal = acct.balances.get(asset, ZERO) + amount - fee
        acct.balances[asset] = quantize_down(bal, places)
        lid = self.ids.kid("L")
        now = self.now()
        entry = {
            "refid": refid,
            "time": now,
            "type": ltype,
            "subtype": subtype,
            "aclass": "currency",
            "asset": asset,
            "amount": amount,
            "fee": fee,
            "balance": acct.balances[asset],
            "wallet": "spot / main",
        }
        acct.ledgers[lid] = entry
        self.emit(acct.id, "ledger", {"id": lid, **entry})
        return entry

    def earn_wallet_entry(
        self,
        acct: Account,
        asset: str,
        amount: Decimal,
        wallet_id: str,
        subtype: str,
        refid: str,
        balance: Decimal | None = None,
    ) -> None:
        """A ledger entry on an Earn wallet (``earn / flex``, ``earn / bonded`` …): the
        counterpart of a spot entry when funds move between spot and Earn. The Earn module
        keeps the wallet amounts; ``balance`` is the wallet's balance after the move."""
        lid = self.ids.kid("L")
        entry = {
            "refid": refid,
            "time": self.now(),
            "type": "earn",
            "subtype": subtype,
            "aclass": "currency",
            "asset": asset,
            "amount": amount,
            "fee": ZERO,
            "balance": acct.auto_earn.get(asset, ZERO) if balance is None else balance,
            "wallet": f"earn / {wallet_id}",
        }
        acct.ledgers[lid] = entry
        self.emit(acct.id, "ledger", {"id": lid, **entry})

    def credit(
        self,
        acct: Account,
        asset: str,
        amount: Decimal,
        ltype: str,
        subtype: str,
        refid: str,
        fee: Decimal = ZERO,
    ) -> dict[str, Any]:
        return self._ledger(acct, asset, amount, fee, ltype, subtype, refid)

    def ledger_json(self, lid: str, entry: dict[str, Any]) -> dict[str, Any]:
        asset_info = ASSETS.get(entry["asset"])
        places = asset_info.decimals if asset_info else 10
        return {
            "refid": entry["refid"],
            "time": ts_num(entry["time"]),
            "type": entry["type"],
            "subtype": entry["subtype"],
            "aclass": entry["aclass"],
            "asset": entry["asset"],
            "amount": fmt(entry["amount"], places),
            "fee": fmt(entry["fee"], places),
            "balance": fmt(entry["balance"], places),
        }

    def _hold(self, acct: Account, order: Order, asset: str, amount: Decimal) -> None:
        order.hold_asset = asset
        order.hold = amount
        acct.holds[asset] = acct.holds.get(asset, ZERO) + amount

    def _release(self, acct: Account, order: Order, amount: Decimal | None = None) -> None:
        if not order.hold_asset:
            return
        amt = order.hold if amount is None else min(amount, order.hold)
        order.hold -= amt
        acct.holds[order.hold_asset] = max(ZERO, acct.holds.get(order.hold_asset, ZERO) - amt)

    # ------------------------------------------------------------------ helpers
    def _fee_pct(self, acct: Account, pair: Pair, maker: bool) -> Decimal:
        return fee_for(pair.maker_fees if maker else pair.taker_fees, acct.volume_usd)

    def ref_price(self, pair: Pair, trigger: str = "last") -> Decimal:
        market = self.markets[pair.id]
        if trigger == "index":
            return market.mid.quantize(pair.price_q)
        return market.last_price

    def balance_usd(self, acct: Account, asset: str, amount: Decimal) -> Decimal:
        if asset == "ZUSD":
            return amount
        for pair in PAIRS.values():
            if pair.base == asset and pair.quote == "ZUSD":
                return amount * self.markets[pair.id].mid
        asset_info = ASSETS.get(asset)
        return amount * (asset_info.usd_hint if asset_info else ZERO)
