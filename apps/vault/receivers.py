"""The vault's reactions to changes announced by lower layers (apps.orgs.signals). Connected
in VaultConfig.ready(); each runs inside the announcing service's transaction."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from apps.orgs.models import KrakenAccount, Membership
from apps.vault.services import credentials_refuse_archive, credentials_restrict_for_member


def on_membership_removed(
    sender: type[Membership],
    *,
    membership: Membership,
    actor: Membership,
    request: HttpRequest | None,
    **kwargs: Any,
) -> None:
    credentials_restrict_for_member(
        membership=membership,
        actor=actor,
        old_role=membership.role,
        new_role=None,
        request=request,
    )


def on_membership_role_changed(
    sender: type[Membership],
    *,
    membership: Membership,
    old_role: str,
    actor: Membership,
    request: HttpRequest | None,
    **kwargs: Any,
) -> None:
    credentials_restrict_for_member(
        membership=membership,
        actor=actor,
        old_role=old_role,
        new_role=membership.role,
        request=request,
    )


def on_kraken_account_archiving(
    sender: type[KrakenAccount],
    *,
    account: KrakenAccount,
    actor: Membership,
    request: HttpRequest | None,
    **kwargs: Any,
) -> None:
    credentials_refuse_archive(account=account)
