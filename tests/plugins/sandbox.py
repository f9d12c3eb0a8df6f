"""pytest plugin: a session-scoped Kraken sandbox running in a subprocess.

Usage (the lead's tests/conftest.py has ``pytest_plugins = ["tests.plugins.sandbox"]``)::

    def test_something(sandbox):
        acct = sandbox.create_account({"USD": "10000"})
        key, secret = sandbox.create_key(acct)
        client = kraken.spot.User(key=key, secret=secret, url=sandbox.url)

Only the standard library is used (urllib), so any test can use it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from apps.sandbox.auth import ALL_PERMISSIONS as SANDBOX_PERMISSIONS

REPO_ROOT = Path(__file__).resolve().parents[2]
# Every permission a sandbox key can hold, from the sandbox itself so the two cannot drift.
ALL_PERMISSIONS: tuple[str, ...] = tuple(SANDBOX_PERMISSIONS)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SandboxProcess:
    """Handle to a running sandbox: URLs plus control-API and signed-REST helpers."""

    def __init__(
        self, port: int, admin_token: str, proc: subprocess.Popen[bytes], seed: int
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.url = f"http://{self.host}:{port}"
        # python-kraken-sdk appends "/v2": use ws_url=sandbox.ws_base, auth_ws_url=...
        self.ws_url = f"ws://{self.host}:{port}/ws/v2"
        self.ws_auth_url = f"ws://{self.host}:{port}/ws-auth/v2"
        self.ws_base = f"ws://{self.host}:{port}/ws"
        self.ws_auth_base = f"ws://{self.host}:{port}/ws-auth"
        self.admin_token = admin_token
        self.proc = proc
        self.seed = seed
        self._nonce = int(time.time() * 1000)
        self.log_path: Path | None = None  # the subprocess's stderr (kept until stop)

    # ------------------------------------------------------------------ control API
    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body or {}).encode() if method != "GET" else None
        req = urllib.request.Request(  # noqa: S310 - local http only
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.admin_token}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:  # noqa: S310
                return json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"sandbox control {path}: {err.code} {err.read()!r}") from None

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/sandbox/health", timeout=5) as resp:  # noqa: S310
            result: dict[str, Any] = json.loads(resp.read())
            return result

    def create_account(
        self, balances: dict[str, str] | None = None, tier: str | None = None
    ) -> str:
        body: dict[str, Any] = {"balances": balances or {}}
        if tier:
            body["tier"] = tier
        return str(self.control("POST", "/sandbox/accounts", body)["account_id"])

    def create_key(
        self,
        account_id: str,
        permissions: Sequence[str] = ALL_PERMISSIONS,
        nonce_window: int = 0,
        otp: str | None = None,
        key: str | None = None,
        secret: str | None = None,
        name: str | None = None,
    ) -> tuple[str, str]:
        body: dict[str, Any] = {"permissions": list(permissions), "nonce_window": nonce_window}
        if name is not None:
            body["name"] = name
        if otp is not None:
            body["otp"] = otp
        if key is not None:
            body["key"] = key
        if secret is not None:
            body["secret"] = secret
        out = self.control("POST", f"/sandbox/accounts/{account_id}/keys", body)
        return str(out["key"]), str(out["secret"])

    def account(self, account_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.control("GET", f"/sandbox/accounts/{account_id}")
        return result

    def deposit(self, account_id: str, asset: str, amount: str, method: str | None = None) -> str:
        body: dict[str, Any] = {"asset": asset, "amount": amount}
        if method:
            body["method"] = method
        return str(self.control("POST", f"/sandbox/accounts/{account_id}/deposits", body)["refid"])

    def add_withdraw_address(
        self, account_id: str, asset: str, key: str, address: str, method: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"asset": asset, "key": key, "address": address}
        if method:
            body["method"] = method
        result: dict[str, Any] = self.control(
            "POST", f"/sandbox/accounts/{account_id}/withdraw-addresses", body
        )
        return result

    def create_subaccount(self, account_id: str, username: str = "") -> str:
        return str(
            self.control(
                "POST", f"/sandbox/accounts/{account_id}/subaccounts", {"username": username}
            )["account_id"]
        )

    def set_status(self, status: str) -> None:
        self.control("POST", "/sandbox/status", {"status": status})

    def set_pair_status(self, pair: str, status: str) -> dict[str, Any]:
        """Per-pair mode (online, cancel_only, post_only, limit_only, reduce_only, …)."""
        result: dict[str, Any] = self.control(
            "POST",
            f"/sandbox/markets/{urllib.parse.quote(pair, safe='')}/status",
            {"status": status},
        )
        return result

    def create_subaccount_info(
        self, account_id: str, username: str = "", balances: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Like ``create_subaccount`` but returns the whole answer (ids, IIBANs, username)."""
        result: dict[str, Any] = self.control(
            "POST",
            f"/sandbox/accounts/{account_id}/subaccounts",
            {"username": username, "balances": balances or {}},
        )
        return result

    def set_faults(
        self,
        rules: list[dict[str, Any]] | None = None,
        *,
        profile: str | None = None,
        ws_disconnect_every: float = 0,
        seed: int | None = None,
    ) -> Any:
        """Replace the fault set. A profile supplies its rules unless ``rules`` are given;
        ``seed`` reseeds every rule's dice (default: the sandbox's seed)."""
        body: dict[str, Any] = {"ws_disconnect_every": ws_disconnect_every}
        if rules is not None or not profile:
            body["rules"] = rules or []
        if profile:
            body["profile"] = profile
        if seed is not None:
            body["seed"] = seed
        return self.control("POST", "/sandbox/faults", body)

    def clear_faults(self) -> None:
        self.set_faults([])

    def move_price(self, pair: str, price: str) -> Any:
        return self.control(
            "POST", f"/sandbox/markets/{urllib.parse.quote(pair, safe='')}/price", {"price": price}
        )

    def advance(self, seconds: float) -> float:
        """Fast-forward the sandbox clock (rate-limit decay, expiries, withdrawals …)."""
        return float(self.control("POST", "/sandbox/clock", {"advance": seconds})["now"])

    def set_clock_speed(self, speed: float) -> None:
        self.control("POST", "/sandbox/clock", {"speed": speed})

    def configure(self, **values: Any) -> Any:
        return self.control("POST", "/sandbox/config", values)

    # ------------------------------------------------------------------ Kraken REST
    def public(self, method: str, **params: Any) -> dict[str, Any]:
        qs = ("?" + urllib.parse.urlencode(params)) if params else ""
        with urllib.request.urlopen(f"{self.url}/0/public/{method}{qs}", timeout=15) as r:  # noqa: S310
            result: dict[str, Any] = json.loads(r.read())
            return result

    def next_nonce(self) -> int:
        self._nonce = max(self._nonce + 1, int(time.time() * 1000))
        return self._nonce

    def private(
        self,
        key: str,
        secret: str,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        as_json: bool = False,
        nonce: int | None = None,
    ) -> dict[str, Any]:
        """Signed private call (form-encoded by default), returning the parsed envelope."""
        data = dict(params or {})
        data["nonce"] = nonce if nonce is not None else self.next_nonce()
        body = json.dumps(data) if as_json else urllib.parse.urlencode(data)
        path = f"/0/private/{method}"
        digest = hashlib.sha256((str(data["nonce"]) + body).encode()).digest()
        sig = base64.b64encode(
            hmac.new(base64.b64decode(secret), path.encode() + digest, hashlib.sha512).digest()
        ).decode()
        req = urllib.request.Request(  # noqa: S310
            self.url + path,
            data=body.encode(),
            method="POST",
            headers={
                "API-Key": key,
                "API-Sign": sig,
                "Content-Type": "application/json"
                if as_json
                else "application/x-www-form-urlencoded",
            },
        )
        with urllib.request.urlopen(req, timeout=15) as resp:  # noqa: S310
            result: dict[str, Any] = json.loads(resp.read())
            return result


def start_sandbox(
    extra_args: Sequence[str] = (), seed: int | None = None, timeout: float = 30.0
) -> SandboxProcess:
    """Start ``python -m apps.sandbox`` on a free port and wait for /sandbox/health."""
    port = free_port()
    token = secrets.token_urlsafe(16)
    seed = seed if seed is not None else 4242
    env = dict(os.environ, SANDBOX_ADMIN_TOKEN=token)
    # stderr goes to a file, not a pipe: nobody drains a pipe while tests run, and a full
    # pipe would block the sandbox's logging (and so the whole exchange).
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop_sandbox
        prefix=f"sandbox-{port}-", suffix=".log", delete=False
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apps.sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--seed",
            str(seed),
            *extra_args,
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    sb = SandboxProcess(port, token, proc, seed)
    sb.log_path = Path(log.name)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = sb.log_path.read_text(errors="replace")
            raise RuntimeError(f"sandbox exited early ({proc.returncode}):\n{err}")
        try:
            sb.health()
            return sb
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.1)
    stop_sandbox(sb)
    raise RuntimeError("sandbox did not become healthy in time")


def stop_sandbox(sb: SandboxProcess) -> None:
    sb.proc.terminate()
    try:
        sb.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        sb.proc.kill()
        sb.proc.wait(timeout=5)
    if sb.log_path is not None:
        sb.log_path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxProcess]:
    """A Kraken sandbox shared by the whole session (create your own accounts/keys)."""
    sb = start_sandbox()
    try:
        yield sb
    finally:
        stop_sandbox(sb)
