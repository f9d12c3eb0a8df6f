"""Which key exchange's unattended reads (the private streams, the balance refresh) use on an
account: the account's designated key, by use, in this order.

A designated trading key reads everything the streams need (Query Funds for `balances`,
BalanceEx and Earn/Allocations, Query Open/Closed for `executions` and TradesHistory, WebSocket
for the token: apps/vault/policy.py), and every account that trades has one. A designated
read-only key serves an account that only reports. A funding key is never used for reading
orders (it may lack Query Open/Closed, and least privilege says it moves money only).
"""

from __future__ import annotations

from apps.orgs.models import KrakenAccount
from apps.vault.models import Credential, Use
from apps.vault.selectors import NoCredential, designated_credential, designated_credentials

READ_USES: tuple[str, ...] = (Use.TRADING, Use.READ_ONLY)

NO_READ_CREDENTIAL = (
    "{account} has no designated trading or read-only key, so its balances and orders cannot "
    "be read: an owner or admin designates one under “API keys”."
)


def read_credential(*, account: KrakenAccount) -> Credential:
    """The designated key exchange reads `account` with; raises NoCredential."""
    for use in READ_USES:
        try:
            return designated_credential(account=account, use=use)
        except NoCredential:
            continue
    raise NoCredential(NO_READ_CREDENTIAL.format(account=account.label))


def read_credentials() -> dict[int, Credential]:
    """{account id: its read key} for every account that has one, across organizations: what
    the streams process polls to pick up accounts and keys added or revoked without a restart."""
    chosen: dict[int, Credential] = {}
    for use in READ_USES:
        for credential in designated_credentials(use=use):
            chosen.setdefault(credential.account_id, credential)
    return chosen
