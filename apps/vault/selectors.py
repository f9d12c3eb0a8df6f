"""Reads for the credential vault. Who may see which key is decided here, and only here.

- A member sees and manages their own keys.
- Owners and admins also see and manage the organization's designated keys (the keys that
  unattended work uses, one per Kraken account and use).
- Nobody uses another member's personal keys. Owners and admins (Capability.OVERSEE_KEYS) see
  every member's keys, masked, on the oversight page and may revoke them; elsewhere another
  member's key id is a 404.

Which key a job uses is decided here too: `credential_for` for work a member started,
`designated_credential` for unattended work (apps/exchange calls both, then asks
`services.credential_key_for_task` for the decrypted key).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from apps.orgs.models import KrakenAccount, Membership, Organization
from apps.orgs.permissions import Role
from apps.vault.models import Credential, Use

CREDENTIAL_NOT_FOUND = "No such API key."
DESIGNATED_KEY_MANAGERS_ONLY = "Only an owner or an admin can change a designated key."
NO_CREDENTIAL = (
    "You have no active {use} API key for {account}. Add one under “API keys” (and check that "
    "its permissions allow {use})."
)
NO_DESIGNATED_CREDENTIAL = (
    "{account} has no designated {use} key: an owner or admin designates one under “API keys” "
    "for unattended work."
)

# Owners and admins see, manage and designate the organization's designated keys, and only
# a key they stored acts as one.
KEY_MANAGERS = frozenset({Role.OWNER, Role.ADMIN})


class NoCredential(Exception):
    """No usable key for the job. The message is safe to show."""


def _visible_filter(membership: Membership) -> Q:
    visible = Q(owner=membership, designated=False)
    if membership.role in KEY_MANAGERS:
        visible |= Q(designated=True)
    return visible


def credential_list(*, membership: Membership) -> QuerySet[Credential]:
    """The member's own keys, and (for owners and admins) the organization's designated keys."""
    return (
        Credential.objects.filter(_visible_filter(membership), org=membership.org)
        .select_related("owner__user", "account__parent")
        .order_by("-designated", "status", "account__label", "-created_at", "-id")
    )


def credential_get(
    *, membership: Membership, credential_id: int, manage: bool = False
) -> Credential:
    """One visible key: 404 if the member may not see it, 403 if they may see but not change it
    (kept for a designated key whose viewer lost the manager role mid-request)."""
    credential = credential_list(membership=membership).filter(pk=credential_id).first()
    if credential is None:
        raise Http404(CREDENTIAL_NOT_FOUND)
    if manage and credential.designated and membership.role not in KEY_MANAGERS:
        raise PermissionDenied(DESIGNATED_KEY_MANAGERS_ONLY)
    return credential


def _active(account: KrakenAccount, use: str) -> QuerySet[Credential]:
    return Credential.objects.filter(
        account=account,
        account__archived_at__isnull=True,
        use=use,
        status=Credential.Status.ACTIVE,
    ).select_related("owner", "account__parent")


def designated_credential(*, account: KrakenAccount, use: str) -> Credential:
    """The key unattended work (streams, finders, approved withdrawals and transfers, workflow
    runs, the kill switch) must use on `account` for `use`; raises NoCredential.

    Only the designated key, and only while the member who stored it is still an owner or
    admin: never whichever member happens to have a key.
    """
    credential = (
        _active(account, use)
        .filter(
            designated=True,
            owner__role__in=KEY_MANAGERS,
            owner__status=Membership.Status.ACTIVE,  # joins bypass the default manager
        )
        .first()
    )
    if credential is None:
        raise NoCredential(
            NO_DESIGNATED_CREDENTIAL.format(account=account.label, use=Use(use).label.lower())
        )
    return credential


def designated_credentials(*, use: str) -> QuerySet[Credential]:
    """Every account's designated key for `use`, across organizations: what a deployment-wide
    process (the private streams, one connection per active account) polls to pick up accounts
    and keys added or revoked without a restart. At most one per account (a constraint)."""
    return (
        Credential.objects.filter(
            use=use,
            designated=True,
            status=Credential.Status.ACTIVE,
            account__archived_at__isnull=True,
            owner__role__in=KEY_MANAGERS,
            owner__status=Membership.Status.ACTIVE,  # joins bypass the default manager
        )
        .select_related("account__parent", "org")
        .order_by("account_id")
    )


def credential_for(*, membership: Membership, account: KrakenAccount, use: str) -> Credential:
    """The key a job started by `membership` uses on `account` for `use`; raises NoCredential.

    The member's own active key for that account and use comes first; otherwise the account's
    designated key for that use. Never another member's personal key.
    """
    if account.org_id != membership.org_id:
        raise NoCredential(CREDENTIAL_NOT_FOUND)
    own = _active(account, use).filter(owner=membership, designated=False).first()
    if own is not None:
        return own
    try:
        return designated_credential(account=account, use=use)
    except NoCredential:
        raise NoCredential(
            NO_CREDENTIAL.format(account=account.label, use=Use(use).label.lower())
        ) from None


def credential_accounts(*, membership: Membership) -> QuerySet[KrakenAccount]:
    """The accounts a member may put a key on: the organization's active ones."""
    return KrakenAccount.objects.filter(
        org_id=membership.org_id, archived_at__isnull=True
    ).order_by("kind", "label", "id")


def credentials_overseen(*, org: Organization) -> QuerySet[Credential]:
    """Every key of the organization's members, current and former, for the owners' and
    admins' oversight page: metadata only (the page masks the API key and never has the
    secret). Keys that still work come first."""
    return (
        Credential.objects.filter(org=org)
        .select_related("owner__user", "account__parent")
        .order_by("status", "owner__user__email", "-created_at", "-id")
    )


def credential_get_overseen(*, org: Organization, credential_id: int) -> Credential:
    credential = credentials_overseen(org=org).filter(pk=credential_id).first()
    if credential is None:
        raise Http404(CREDENTIAL_NOT_FOUND)
    return credential
