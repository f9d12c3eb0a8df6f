"""Fault injection: latency, Cloudflare-style 5xx, EService errors, lost responses, private
sockets dropped during fills and periodic WS disconnects. Configured by a CLI profile or
``POST /sandbox/faults``.

Each rule throws its own dice, seeded from the sandbox seed (or the ``seed`` given to the
control API), the rule's position and what it matches: the n-th request a rule sees gets
the same verdict on every run, whatever other traffic does."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

KINDS = frozenset(
    {"latency", "http_5xx", "unavailable", "busy", "lost_response", "ws_drop_on_fill"}
)
# Trading methods, REST and WS, that the ``trading`` profile and order tests aim at.
ORDER_METHODS = ("AddOrder", "AmendOrder", "CancelOrder")

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
    # REST method names (AddOrder, Earn/Allocate), WS methods (add_order), "public",
    # "private" or "*"; one name or several.
    endpoints: tuple[str, ...] = ("*",)
    probability: float = 1.0
    count: int | None = None  # remaining activations; None = unlimited
    latency_ms: int = 0
    status: int = 502
    mode: str = "drop"  # lost_response: "drop" (close socket) or "5xx"
    dice: random.Random = field(default_factory=random.Random)

    def matches(self, method: str, private: bool) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        return any(
            endpoint in ("*", method) or endpoint == ("private" if private else "public")
            for endpoint in self.endpoints
        )

    def roll(self) -> bool:
        """One throw of this rule's dice; a hit consumes one activation."""
        if self.dice.random() >= self.probability:
            return False
        if self.count is not None:
            self.count -= 1
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "endpoint": self.endpoints[0] if len(self.endpoints) == 1 else list(self.endpoints),
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
    # The trading desk's chaos test: lost answers after the order is applied, 5xx before it
    # is, and private sockets cut while fills stream.
    "trading": {
        "rules": [
            {"kind": "http_5xx", "endpoint": list(ORDER_METHODS), "probability": 0.05},
            {"kind": "lost_response", "endpoint": list(ORDER_METHODS), "probability": 0.10},
            {"kind": "ws_drop_on_fill", "probability": 0.05},
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
        self.sandbox_seed = seed
        self.seed = seed
        self.profile = "none"

    def configure(self, data: dict[str, Any]) -> None:
        self.seed = int(data["seed"]) if data.get("seed") is not None else self.sandbox_seed
        self.profile = str(data.get("profile") or "custom")
        if "profile" in data:
            prof = PROFILES.get(str(data["profile"]))
            if prof is None:
                raise ValueError(f"unknown fault profile {data['profile']!r}")
            data = {**prof, **{k: v for k, v in data.items() if k != "profile"}}
        rules = []
        for position, rule in enumerate(data.get("rules", [])):
            if rule.get("kind") not in KINDS:
                raise ValueError(f"unknown fault kind {rule.get('kind')!r}")
            raw = rule.get("endpoint", "*")
            endpoints = tuple(str(e) for e in raw) if isinstance(raw, list) else (str(raw),)
            if not endpoints:
                raise ValueError("endpoint must name at least one method")
            probability = float(rule.get("probability", 1.0))
            if not 0.0 <= probability <= 1.0:
                raise ValueError("probability must be within [0, 1]")
            mode = str(rule.get("mode", "drop"))
            if mode not in ("drop", "5xx"):
                raise ValueError("mode must be 'drop' or '5xx'")
            seed_text = f"{self.seed}:{position}:{rule['kind']}:{','.join(endpoints)}"
            rules.append(
                Rule(
                    kind=rule["kind"],
                    endpoints=endpoints,
                    probability=probability,
                    count=None if rule.get("count") is None else int(rule["count"]),
                    latency_ms=int(rule.get("latency_ms", 0)),
                    status=int(rule.get("status", 502)),
                    mode=mode,
                    dice=random.Random(seed_text),  # noqa: S311 - fault dice, not crypto
                )
            )
        self.rules = rules
        self.ws_disconnect_every = float(data.get("ws_disconnect_every", 0) or 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "seed": self.seed,
            "rules": [rule.to_json() for rule in self.rules],
            "ws_disconnect_every": self.ws_disconnect_every,
        }

    def pick(self, method: str, private: bool) -> list[Rule]:
        """Request rules that fire for this request (each consumes one activation)."""
        return [
            rule
            for rule in self.rules
            if rule.kind != "ws_drop_on_fill" and rule.matches(method, private) and rule.roll()
        ]

    def lost_ws_answer(self, method: str) -> Rule | None:
        """A ``lost_response`` rule that fires for this WS trading request, if any."""
        for rule in self.rules:
            if rule.kind == "lost_response" and rule.matches(method, True) and rule.roll():
                return rule
        return None

    def drop_on_fill(self) -> bool:
        """Whether to cut an account's private sockets as a fill is about to stream."""
        return any(
            rule.kind == "ws_drop_on_fill" and rule.matches("executions", True) and rule.roll()
            for rule in self.rules
        )


def html_5xx(status: int) -> str:
    return CLOUDFLARE_HTML.format(code=status, reason=REASONS.get(status, "Error"))
