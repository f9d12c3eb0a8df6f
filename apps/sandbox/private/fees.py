"""TradeVolume: 30-day volume, fee tiers per pair and (16 Jun 2026) whole fee schedules."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apps.sandbox.errors import KrakenError, invalid
from apps.sandbox.pairs import Pair, fee_for, fmt, next_fee
from apps.sandbox.params import check_known, str_list

from .context import Ctx, allow

# TradeVolume's parameters: the spec's ``pair``/``rebase_multiplier``, the legacy ``fee-info``
# flag that krakenex/ccxt-era clients still send (now a no-op: Kraken derives fee inclusion
# from ``pair``), ``fee_schedule`` (16 Jun 2026) and ``asset_class`` (Aug 2025).
TRADE_VOLUME_PARAMS = allow("pair", "rebase_multiplier", "fee-info", "fee_schedule", "asset_class")
SPOT_FEE_CLASSES = frozenset({"forex", "currency"})


def _trade_volume_pairs(ctx: Ctx) -> list[Pair]:
    """``pair``: a comma list, a list of names, or (16 Jun 2026) a list of
    ``{"asset": ..., "aclass": ...}`` objects; only spot classes exist here."""
    raw = ctx.params.get("pair")
    if raw is None or raw == "":
        return []
    names: list[str] = []
    if isinstance(raw, list) and raw and all(isinstance(item, dict) for item in raw):
        for item in raw:
            if str(item.get("aclass", "forex")) not in SPOT_FEE_CLASSES or not item.get("asset"):
                raise KrakenError("EQuery:Unknown asset pair")
            names.append(str(item["asset"]))
    else:
        names = str_list(ctx.params, "pair") or []
    return [ctx.engine.resolve_pair_param({"pair": name}) for name in names]


def _fee_schedule_flag(ctx: Ctx) -> bool:
    # Kraken checks it against the JSON literals (python-kraken-sdk notes that "True" fails).
    raw = ctx.params.get("fee_schedule")
    if raw is None or raw is False or raw == "false":
        return False
    if raw is True or raw == "true":
        return True
    raise invalid("fee_schedule")


def _schedule(pair: Pair, volume: Decimal) -> dict[str, Any]:
    tiers: list[dict[str, Any]] = []
    active = max(i for i, (threshold, _) in enumerate(pair.taker_fees) if volume >= threshold)
    for i, ((threshold, taker), (_, maker)) in enumerate(
        zip(pair.taker_fees, pair.maker_fees, strict=True)
    ):
        tier: dict[str, Any] = {"maker_fee": fmt(maker, 4), "taker_fee": fmt(taker, 4)}
        if threshold:
            tier["min_spot_volume"] = fmt(Decimal(threshold), 4)
        if i == active:
            tier["active"] = True
        tiers.append(tier)
    return {"pair": pair.altname, "class": "forex", "tiers": tiers}


def trade_volume(ctx: Ctx) -> Any:
    check_known(ctx.params, TRADE_VOLUME_PARAMS)
    vol = ctx.acct.volume_usd
    out: dict[str, Any] = {"currency": "ZUSD", "volume": fmt(vol, 4)}
    pairs = _trade_volume_pairs(ctx)
    with_schedule = _fee_schedule_flag(ctx)
    if pairs:
        fees: dict[str, Any] = {}
        fees_maker: dict[str, Any] = {}
        for pair in pairs:
            for sched, target in ((pair.taker_fees, fees), (pair.maker_fees, fees_maker)):
                next_fee_pct, next_volume, tier_volume = next_fee(sched, vol)
                target[pair.id] = {
                    "fee": fmt(fee_for(sched, vol), 4),
                    "minfee": fmt(sched[-1][1], 4),
                    "maxfee": fmt(sched[0][1], 4),
                    "nextfee": fmt(next_fee_pct, 4) if next_fee_pct is not None else None,
                    "nextvolume": fmt(next_volume, 4) if next_volume is not None else None,
                    "tiervolume": fmt(tier_volume, 4),
                }
        out["fees"] = fees
        out["fees_maker"] = fees_maker
        if with_schedule:
            out["schedules"] = [_schedule(pair, vol) for pair in pairs]
    return out
