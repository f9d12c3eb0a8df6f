"""Funding methods per asset (reference data close to Kraken's: fees, minimums, limits and
address shapes), used by the funding endpoints and the control API."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Method:
    asset: str
    name: str
    network: str
    fee: Decimal
    minimum: Decimal
    limit: Decimal
    addr_prefix: str
    addr_len: int
    fiat: bool = False


def _method_row(
    asset: str,
    name: str,
    network: str,
    fee: str,
    minimum: str,
    limit: str,
    addr_prefix: str,
    addr_len: int,
    fiat: bool = False,
) -> Method:
    return Method(
        asset,
        name,
        network,
        Decimal(fee),
        Decimal(minimum),
        Decimal(limit),
        addr_prefix,
        addr_len,
        fiat,
    )


METHODS: dict[str, list[Method]] = {
    "XXBT": [
        _method_row("XXBT", "Bitcoin", "Bitcoin", "0.00015", "0.0005", "100", "bc1q", 38),
    ],
    "XETH": [
        _method_row("XETH", "Ether", "Ethereum", "0.0035", "0.005", "1000", "0x", 40),
    ],
    "SOL": [
        _method_row("SOL", "Solana", "Solana", "0.01", "0.05", "50000", "", 44),
    ],
    "USDT": [
        _method_row("USDT", "Tether USD (ERC20)", "Ethereum", "5", "10", "1000000", "0x", 40),
        _method_row("USDT", "Tether USD (TRC20)", "Tron", "2.5", "5", "1000000", "T", 33),
    ],
    "USDC": [
        _method_row("USDC", "USDC", "Ethereum", "5", "10", "1000000", "0x", 40),
    ],
    "DOT": [
        _method_row("DOT", "Polkadot", "Polkadot", "0.05", "1.5", "100000", "1", 47),
    ],
    "ADA": [
        _method_row("ADA", "ADA", "Cardano", "0.5", "10", "1000000", "addr1", 53),
    ],
    "XXRP": [
        _method_row("XXRP", "Ripple XRP", "Ripple", "0.02", "25", "1000000", "r", 33),
    ],
    "XLTC": [
        _method_row("XLTC", "Litecoin", "Litecoin", "0.001", "0.01", "10000", "ltc1q", 38),
    ],
    "ZUSD": [
        _method_row("ZUSD", "Bank Frick (SWIFT)", "", "35", "150", "1000000", "", 0, fiat=True),
    ],
    "ZEUR": [
        _method_row("ZEUR", "SEPA (Clearjunction)", "", "0.35", "10", "1000000", "", 0, fiat=True),
    ],
}
