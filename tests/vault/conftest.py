"""Vault fixtures: a keyring, fresh Kraken-shaped key pairs, stored keys, stepped-up clients."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from apps.accounts.services import STEP_UP_SESSION_KEY
from apps.orgs.models import KrakenAccount, Membership
from apps.vault.models import Credential, Use
from apps.vault.services import credential_create
from tests.factories import master_account

KEK_1 = base64.b64encode(os.urandom(32)).decode()
KEK_2 = base64.b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class KeyPair:
    api_key: str
    secret: str
    otp: str | None = None

    def secret_forms(self) -> list[str]:
        """Every spelling of the secret (and key password) that must never be found at rest."""
        raw = base64.b64decode(self.secret)
        forms = [
            self.secret,
            base64.b64encode(self.secret.encode()).decode(),
            base64.urlsafe_b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(self.secret.encode()).decode(),
            raw.hex(),
            self.secret.encode().hex(),
        ]
        if self.otp:
            forms += [
                self.otp,
                base64.b64encode(self.otp.encode()).decode(),
                self.otp.encode().hex(),
            ]
        return forms


def new_key_pair(otp: str | None = None) -> KeyPair:
    return KeyPair(
        api_key=base64.b64encode(os.urandom(42)).decode(),
        secret=base64.b64encode(os.urandom(64)).decode(),
        otp=otp,
    )


@pytest.fixture(autouse=True)
def keyring(settings: Any) -> str:
    settings.PORTAL_KEYRING = f"k1:{KEK_1}"
    return str(settings.PORTAL_KEYRING)


@pytest.fixture
def key_pair() -> KeyPair:
    return new_key_pair()


@pytest.fixture
def store_key() -> Callable[..., tuple[Credential, KeyPair]]:
    """`store_key(membership, use=..., otp=..., account=...)`: a stored key (no probe) and its
    plain pair; on the organization's master account unless `account` is given."""

    def store(
        membership: Membership,
        *,
        use: str = Use.TRADING,
        otp: str | None = None,
        designated: bool = False,
        label: str = "Desk BTC",
        pair: KeyPair | None = None,
        account: KrakenAccount | None = None,
    ) -> tuple[Credential, KeyPair]:
        pair = pair or new_key_pair(otp=otp)
        credential = credential_create(
            membership=membership,
            label=label,
            api_key=pair.api_key,
            secret=pair.secret,
            otp=pair.otp,
            account=account or master_account(membership.org),
            use=use,
            probe=False,
            designated=designated,
        )
        return credential, pair

    return store


@pytest.fixture
def store_checked_key(
    sandbox: Any, settings: Any, store_key: Callable[..., tuple[Credential, KeyPair]]
) -> Callable[..., tuple[Credential, KeyPair]]:
    """`store_checked_key(membership, use=..., permissions=...)`: a key that exists in the
    Kraken sandbox (by default with exactly what its use needs), stored and then checked by
    the real permission probe, as a key must be before it may trade or move funds."""
    from apps.exchange.key_check import credential_check
    from apps.vault.policy import NEEDED
    from apps.vault.services import credential_test

    settings.KRAKEN_API_URL = sandbox.url

    def store(
        membership: Membership,
        *,
        use: str = Use.TRADING,
        permissions: list[str] | None = None,
        otp: str | None = None,
        **kwargs: Any,
    ) -> tuple[Credential, KeyPair]:
        account = sandbox.create_account({"USD": "10000", "XBT": "1"})
        wanted = sorted(NEEDED[use]) if permissions is None else permissions
        api_key, secret = sandbox.create_key(account, permissions=wanted, otp=otp)
        credential, pair = store_key(
            membership, use=use, pair=KeyPair(api_key=api_key, secret=secret, otp=otp), **kwargs
        )
        credential_test(credential=credential)
        credential_check(credential_id=credential.pk)  # the worker's task body, run here
        credential.refresh_from_db()
        return credential, pair

    return store


def step_up(client: Client) -> Client:
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time()
    session.save()
    return client


@pytest.fixture
def stepped_up_client_for(client_for: Callable[[Membership], Client]) -> Callable[..., Client]:
    """A signed-in, 2FA-verified client that has just confirmed a step-up code."""
    return lambda membership: step_up(client_for(membership))
