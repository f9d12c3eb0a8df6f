"""Private channels: `executions` and `balances` snapshots and their live updates."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apps.sandbox.earn import earn_wallets
from apps.sandbox.engine import Account
from apps.sandbox.pairs import ASSETS, PAIRS
from apps.sandbox.util import rfc3339

from .connection import (
    Conn,
    HubBase,
)


class PrivateChannels(HubBase):
    # ------------------------------------------------------------------ private
    def _order_snapshot(self, acct: Account) -> list[dict[str, Any]]:
        out = []
        for txid in acct.open_ids:
            order = acct.orders[txid]
            pair = PAIRS[order.pair]
            entry: dict[str, Any] = {
                "order_id": order.txid,
                "symbol": pair.symbol,
                "order_qty": order.volume,
                "cum_qty": order.vol_exec,
                "cum_cost": order.cost,
                "order_type": order.ordertype,
                "side": order.side,
                "time_in_force": order.timeinforce,
                "order_status": "partially_filled"
                if order.vol_exec
                else ("new" if order.status == "open" else "pending_new"),
                "exec_type": "pending_new" if order.status == "pending" else "new",
                "order_userref": order.userref or 0,
                "timestamp": rfc3339(order.opentm),
                "fee_usd_equiv": order.fee,
                "fee_ccy_pref": "fcib" if "fcib" in order.oflags else "fciq",
            }
            lim = order.price2 if order.ordertype.endswith("-limit") else order.price
            if lim is not None:
                entry["limit_price"] = lim
            if order.cl_ord_id:
                entry["cl_ord_id"] = order.cl_ord_id
            if order.vol_exec:
                entry["avg_price"] = (order.cost / order.vol_exec).quantize(pair.price_q)
            out.append(entry)
        return out

    def _trade_snapshot(self, acct: Account) -> list[dict[str, Any]]:
        out = []
        for tid, trade in list(acct.trades.items())[-50:]:
            pair = PAIRS[trade["pair"]]
            out.append(
                {
                    "order_id": trade["ordertxid"],
                    "exec_id": tid,
                    "exec_type": "trade",
                    "trade_id": trade["trade_id"],
                    "symbol": pair.symbol,
                    "side": trade["type"],
                    "last_qty": trade["vol"],
                    "last_price": trade["price"],
                    "liquidity_ind": "m" if trade["maker"] else "t",
                    "cost": trade["cost"],
                    "order_status": "filled",
                    "order_type": trade["ordertype"],
                    "timestamp": rfc3339(trade["time"]),
                    "fees": [{"asset": ASSETS[trade["fee_asset"]].ws, "qty": trade["fee"]}],
                }
            )
        return out

    def _balances_snapshot(self, acct: Account) -> list[dict[str, Any]]:
        """Per asset the total and its wallets: spot ``main`` and one Earn wallet per lock
        type (``flex`` auto-earn, ``flexible`` instant, ``bonded``, ``locked`` timed)."""
        earn = earn_wallets(acct)
        out = []
        for asset in sorted(set(acct.balances) | set(earn)):
            asset_info = ASSETS[asset]
            step = Decimal(1).scaleb(-asset_info.decimals)
            spot = acct.balances.get(asset, Decimal(0)).quantize(step)
            wallets: list[dict[str, Any]] = [{"type": "spot", "id": "main", "balance": spot}]
            total = spot
            for wallet_id, amount in sorted(earn.get(asset, {}).items()):
                wallets.append({"type": "earn", "id": wallet_id, "balance": amount.quantize(step)})
                total += amount.quantize(step)
            out.append(
                {
                    "asset": asset_info.ws,
                    "asset_class": "currency",
                    "balance": total,
                    "wallets": wallets,
                }
            )
        return out

    def _subscribe_private(
        self,
        conn: Conn,
        channel: str,
        acct: Account,
        params: dict[str, Any],
        req_id: Any,
        time_in: str,
    ) -> None:
        conn.subs.add((channel, ""))
        if channel == "executions":
            self.exec_subs.setdefault(acct.id, set()).add(conn)
            conn.exec_opts = {"order_status": params.get("order_status", True)}
            tier = self.engine.tier_of(acct)
            result: dict[str, Any] = {"channel": "executions", "snapshot": True}
            if params.get("ratecounter"):
                result["maxratecount"] = int(tier.trade_max)
            conn.send(self._ack("subscribe", req_id, time_in, result))
            data: list[dict[str, Any]] = []
            if params.get("snap_orders", True):
                data.extend(self._order_snapshot(acct))
            if params.get("snap_trades", False):
                data.extend(self._trade_snapshot(acct))
            conn.send(
                self._frame(
                    {
                        "channel": "executions",
                        "type": "snapshot",
                        "data": data,
                        "sequence": conn.next_seq("executions"),
                    }
                )
            )
        else:
            self.balance_subs.setdefault(acct.id, set()).add(conn)
            conn.send(
                self._ack("subscribe", req_id, time_in, {"channel": "balances", "snapshot": True})
            )
            conn.send(
                self._frame(
                    {
                        "channel": "balances",
                        "type": "snapshot",
                        "data": self._balances_snapshot(acct),
                        "sequence": conn.next_seq("balances"),
                    }
                )
            )

    def on_event(self, account_id: str, kind: str, payload: dict[str, Any]) -> None:
        if kind == "execution":
            conns = self.exec_subs.get(account_id)
            if not conns:
                return
            if payload["exec_type"] == "trade" and self.faults and self.faults.drop_on_fill():
                # Fault: the account's private sockets die as this fill is about to stream;
                # the client must reconnect and recover it (snapshot, REST).
                for conn in list(conns | self.balance_subs.get(account_id, set())):
                    self.abort(conn)
                return
            for conn in conns:
                if not conn.exec_opts.get("order_status", True) and payload["exec_type"] in (
                    "pending_new",
                    "trade",
                    "amended",
                    "restated",
                ):
                    continue
                conn.send(
                    self._frame(
                        {
                            "channel": "executions",
                            "type": "update",
                            "data": [payload],
                            "sequence": conn.next_seq("executions"),
                        }
                    )
                )
        elif kind == "ledger":
            conns = self.balance_subs.get(account_id)
            if not conns:
                return
            asset_info = ASSETS.get(payload["asset"])
            wallet_type, _, wallet_id = str(payload.get("wallet", "spot / main")).partition(" / ")
            # Kraken's update `balance` is "the total amount of this asset held in account"
            # (every wallet: spot and Earn), not the wallet's own balance.
            acct = self.engine.accounts.get(account_id)
            total = payload["balance"]
            if acct is not None:
                total = acct.balances.get(payload["asset"], Decimal(0)) + sum(
                    earn_wallets(acct).get(payload["asset"], {}).values(), Decimal(0)
                )
                if asset_info is not None:
                    total = total.quantize(Decimal(1).scaleb(-asset_info.decimals))
            data = {
                "ledger_id": payload["id"],
                "ref_id": payload["refid"],
                "timestamp": rfc3339(payload["time"]),
                "type": payload["type"],
                "subtype": payload["subtype"],
                "category": payload["type"],
                "asset": asset_info.ws if asset_info else payload["asset"],
                "asset_class": "currency",
                "amount": payload["amount"],
                "fee": payload["fee"],
                "balance": total,
                "wallet_type": wallet_type,
                "wallet_id": wallet_id,
            }
            for conn in conns:
                conn.send(
                    self._frame(
                        {
                            "channel": "balances",
                            "type": "update",
                            "data": [data],
                            "sequence": conn.next_seq("balances"),
                        }
                    )
                )

    # ------------------------------------------------------------------ trading
