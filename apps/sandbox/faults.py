"""Fault injection: latency, Cloudflare-style 5xx, EService errors, lost responses and
forced WS disconnects. Configured by a CLI profile or ``POST /sandbox/faults``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

KINDS = frozenset({"latency", "http_5xx", "unavailable", "busy", "lost_response"})

CLOUDFLARE_HTML = """<html>
<head><title>{code} {reason}</title></head>
<body>
<center><h1>{code} {reason}</h1></center>
<hr><center>cloudflare</center>
</body>
</html>
"""
REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Time-out",
    520: "Origin Error",
    522: "Connection timed out",
}


@dataclass
class Rule:
    kind: str
    endpoint: str = "*"  # method name (AddOrder, Earn/Allocate), "public", "private" or "*"
    probability: float = 1.0
    count: int | None = None  # remaining activations; None = unlimited
    latency_ms: int = 0
    status: int = 502
    mode: str = "drop"  # lost_response: "drop" (close socket) or "5xx"

    def matches(self, method: str, private: bool) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        return self.endpoint in ("*", method) or (
            self.endpoint == ("private" if private else "public")
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "endpoint": self.endpoint,
            "probability": self.probability,
            "count": self.count,
            "latency_ms": self.latency_ms,
            "status": self.status,
            "mode": self.mode,
        }


PROFILES: dict[str, dict[str, Any]] = {
    "none": {"rules": []},
    "slow": {"rules": [{"kind": "latency", "latency_ms": 150}]},
    "flaky": {
        "rules": [
            {"kind": "latency", "latency_ms": 40},
            {"kind": "http_5xx", "endpoint": "private", "probability": 0.03, "status": 502},
            {"kind": "busy", "endpoint": "private", "probability": 0.02},
        ]
    },
    "lossy": {
        "rules": [
            {"kind": "lost_response", "endpoint": "AddOrder", "probability": 0.2, "mode": "drop"},
            {"kind": "lost_response", "endpoint": "CancelOrder", "probability": 0.1, "mode": "5xx"},
        ]
    },
    "chaos": {
        "rules": [
            {"kind": "latency", "latency_ms": 100},
            {"kind": "http_5xx", "probability": 0.05, "status": 520},
            {"kind": "unavailable", "endpoint": "private", "probability": 0.03},
            {"kind": "lost_response", "endpoint": "AddOrder", "probability": 0.1},
        ],
        "ws_disconnect_every": 30,
    },
}


class Faults:
    def __init__(self, seed: int) -> None:
        self.rules: list[Rule] = []
        self.ws_disconnect_every: float = 0.0
        self._rng = random.Random(seed ^ 0xFA17)  # noqa: S311 - fault dice, not crypto

    def configure(self, data: dict[str, Any]) -> None:
        if "profile" in data:
            prof = PROFILES.get(str(data["profile"]))
            if prof is None:
                raise ValueError(f"unknown fault profile {data['profile']!r}")
            data = {**prof, **{k: v for k, v in data.items() if k != "profile"}}
        rules = []
        for rule in data.get("rules", []):
            if rule.get("kind") not in KINDS:
                raise ValueError(f"unknown fault kind {rule.get('kind')!r}")
            rules.append(
                Rule(
                    kind=rule["kind"],
                    endpoint=str(rule.get("endpoint", "*")),
                    probability=float(rule.get("probability", 1.0)),
                    count=None if rule.get("count") is None else int(rule["count"]),
                    latency_ms=int(rule.get("latency_ms", 0)),
                    status=int(rule.get("status", 502)),
                    mode=str(rule.get("mode", "drop")),
                )
            )
        self.rules = rules
        self.ws_disconnect_every = float(data.get("ws_disconnect_every", 0) or 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": [rule.to_json() for rule in self.rules],
            "ws_disconnect_every": self.ws_disconnect_every,
        }

    def pick(self, method: str, private: bool) -> list[Rule]:
        """Rules that fire for this request (each consumes one activation)."""
        fired = []
        for rule in self.rules:
            if rule.matches(method, private) and self._rng.random() < rule.probability:
                if rule.count is not None:
                    rule.count -= 1
                fired.append(rule)
        return fired


def html_5xx(status: int) -> str:
    return CLOUDFLARE_HTML.format(code=status, reason=REASONS.get(status, "Error"))
