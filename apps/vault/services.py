"""Writes for the credential vault. Every change is one function, audited in its transaction.

Secrets enter only through `credential_create` and leave only through `credential_key_for_task`
(inside Celery tasks). Everything else handles ids and metadata.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from apps.core.trail import audit_record
from apps.orgs.models import KrakenAccount, Membership, Organization
from apps.orgs.permissions import Role
from apps.vault import crypto
from apps.vault.hooks import key_check_enqueue
from apps.vault.models import Credential, Use
from apps.vault.policy import USE_CAPABILITY, assess, role_allows_use, use_label
from apps.vault.validators import clean_key_pair

if TYPE_CHECKING:
    from apps.kraken.client import KrakenKey

logger = logging.getLogger(__name__)

DUPLICATE_USE = (
    "You already have an active {use} key (“{label}”) for {account}. Revoke it before adding "
    "another, so it is always clear which key does what."
)
DUPLICATE_DESIGNATED = (
    "{account} already has a designated {use} key (“{label}”). Revoke it or withdraw its "
    "designation first."
)
DUPLICATE_API_KEY = "This API key is already stored in this organization."
DESIGNATION_NEEDS_MANAGER = "Only an owner or an admin can designate a key for unattended work."
DESIGNATED_KEY_HOLDER = (
    "Only a key stored by an owner or an admin can be designated: unattended work acts for "
    "the whole organization."
)
ACCOUNT_UNAVAILABLE = "Choose one of the organization's active Kraken accounts."
ACCOUNT_HAS_KEYS = (
    "This account still has {count} API key(s) that can act on it (active or cancel-only). "
    "Revoke them before archiving it."
)
CONCURRENT_CHANGE = "Another change to these keys happened at the same time. Please try again."
ALREADY_REVOKED = "This key is already revoked."
CREDENTIAL_NOT_ACTIVE = "This key has been revoked and can no longer be used."
PROBE_ALREADY_RUNNING = "A permission check for this key is already running."
LABEL_REQUIRED = "Give the key a label."
USE_NOT_ALLOWED = (
    "Your role ({role}) does not allow {use}, so a key for it cannot be stored. Choose one of: "
    "{uses}."
)
NOT_A_MEMBER_ANY_MORE = "You are no longer a member of this organization."
CANCEL_ONLY_ON_ROLE_CHANGE = (
    "Your role in {org} changed from {old} to {new}, which does not allow {use}. This key can "
    "now only cancel your open orders; it will be revoked once none are left."
)
CANCEL_ONLY_ON_REMOVAL = (
    "You were removed from {org}. This key can now only cancel your open orders; it will be "
    "revoked once none are left."
)
REVOKED_ON_ROLE_CHANGE = (
    "Your role in {org} changed from {old} to {new}, which does not allow {use}: the key was "
    "revoked."
)
REVOKED_ON_REMOVAL = "You were removed from {org}: the key was revoked."
REVOKED_BY_OVERSEER = "Revoked by {email} ({role})."
# Refusals of the decrypt path (KeyUseRefused).
KEY_CANCEL_ONLY = (
    "This key is cancel-only: its owner's role no longer allows {use}. It can only cancel the "
    "owner's open orders."
)
KEY_WRONG_USE = "This is a {use} key; it cannot be used for {purpose}."
KEY_ROLE_LOST = "The key's owner ({role}) is no longer allowed {use}; the key cannot be used."
KEY_OWNER_REMOVED = "The key's owner is no longer a member of the organization."
KEY_DESIGNATED_HOLDER_GONE = (
    "This designated key's creator is no longer an owner or admin; it cannot be used."
)
KEY_OVERPRIVILEGED = (
    "This key can {names}, more than {use} needs, and the organization no longer accepts "
    "over-privileged keys."
)
KEY_NOT_CHECKED = "This key's permissions have not been checked yet; test the connection first."
KEY_PERMISSIONS_UNDETERMINED = (
    "The last check could not tell whether this key can {names}, which {use} never needs; "
    "test the connection again before using it."
)
KEY_NOT_THEIRS_TO_CANCEL = (
    "This key belongs to another member; only the organization's kill switch may use it to "
    "cancel for someone else."
)
KEY_ACTOR_NOT_ALLOWED = "The member this task acts for is no longer allowed to {purpose}."

# A probe that has been "running" this long lost its worker; a new test may take over.
PROBE_STALE_AFTER = timedelta(minutes=5)


class CredentialUnavailable(Exception):
    """The credential cannot be used (revoked, or gone). The message is safe to show."""


class KeyUseRefused(CredentialUnavailable):
    """The key exists but may not be used for this purpose now: it is cancel-only, its
    owner's role no longer allows its use, or it can do more than the organization accepts.
    Raised by the decrypt path, which checks on every open, so a task queued before a
    demotion cannot use the key after it. The message is safe to show."""


class KeyPurpose(StrEnum):
    """What a task opens a key for. The decrypt path checks it against the key's use, the
    key's state and its owner's current role every time."""

    PROBE = "probe"  # the permission check (harmless calls)
    READ = "read"  # balances, order and ledger queries
    TRADE = "trade"  # place or amend orders
    FUND = "fund"  # withdrawals, transfers
    CANCEL = "cancel"  # cancel the key owner's open orders (allowed on cancel-only keys)
    KILL_SWITCH = "kill_switch"  # the organization's kill switch (allowed on cancel-only keys)


class KeyNotChecked(KeyUseRefused):
    """The key may not trade or move funds yet: its permission check has not finished
    (never run, still pending, failed) or left a power its use never needs undetermined.
    Testing the connection again settles it. The message is safe to show."""


# Purposes that only reduce risk: a cancel-only key serves them.
_CANCELLING = frozenset({KeyPurpose.CANCEL, KeyPurpose.KILL_SWITCH})
# What a key opened to cancel may call: the cancels, and the reads that find the orders to
# cancel. Not GetWebSocketsToken: its token would let the WebSocket API place orders.
CANCEL_METHODS = frozenset(
    {
        "CancelOrder",
        "CancelOrderBatch",
        "CancelAll",
        "CancelAllOrdersAfter",
        "Balance",
        "OpenOrders",
        "ClosedOrders",
        "QueryOrders",
        "TradesHistory",
    }
)
# The use a key must have for a purpose (READ and PROBE: any use).
_PURPOSE_USE = {
    KeyPurpose.TRADE: Use.TRADING,
    KeyPurpose.FUND: Use.FUNDING,
    KeyPurpose.CANCEL: Use.TRADING,
    KeyPurpose.KILL_SWITCH: Use.TRADING,
}


def _binding(credential: Credential) -> crypto.Binding:
    return crypto.Binding(
        credential_id=credential.pk, org_id=credential.org_id, owner_id=credential.owner_id
    )


# Who may designate a key, and whose keys may be designated: the organization's managers.
_DESIGNATORS = frozenset({Role.OWNER, Role.ADMIN})


def _audit_detail(credential: Credential) -> dict[str, Any]:
    return {
        "label": credential.label,
        "api_key": credential.masked_key,
        "use": credential.use,
        "account": credential.account_id,
        "account_label": credential.account.label,
        "designated": credential.designated,
    }


def _enqueue_probe(credential_id: int) -> None:
    # The check itself asks Kraken, so exchange runs it (apps.vault.hooks). Robust: if the
    # broker is down the key is still saved; the probe stays "pending" and the member can press
    # "Test connection" again.
    transaction.on_commit(partial(key_check_enqueue, credential_id), robust=True)


def _check_free(
    *, membership: Membership, account: KrakenAccount, use: str, api_key: str, designated: bool
) -> None:
    active = Credential.objects.filter(status=Credential.Status.ACTIVE, account=account, use=use)
    names = {"use": Use(use).label.lower(), "account": account.label}
    if designated:
        clash = active.filter(designated=True).first()
        if clash is not None:
            raise ValidationError({"use": DUPLICATE_DESIGNATED.format(**names, label=clash.label)})
    else:
        clash = active.filter(owner=membership, designated=False).first()
        if clash is not None:
            raise ValidationError({"use": DUPLICATE_USE.format(**names, label=clash.label)})
    if Credential.objects.filter(
        status=Credential.Status.ACTIVE, org=membership.org, api_key=api_key
    ).exists():
        raise ValidationError({"api_key": DUPLICATE_API_KEY})


def _check_role_allows(*, membership: Membership, use: str) -> None:
    """A key is stored only for a use the member's role has, read again inside the
    transaction (the membership may have been demoted or removed since the page loaded)."""
    # The organization's row is locked first, as membership changes lock it
    # (apps.orgs.services.memberships): a demotion or removal running now either sees this key
    # when it restricts the member's keys, or runs first and this reads the new role. The same
    # lock order on both sides means the two queue up and never deadlock.
    Organization.objects.select_for_update().filter(pk=membership.org_id).first()
    role = Membership.objects.filter(pk=membership.pk).values_list("role", flat=True).first()
    if role is None:
        raise PermissionDenied(NOT_A_MEMBER_ANY_MORE)
    if not role_allows_use(role, use):
        from apps.vault.policy import uses_for_role

        allowed = ", ".join(Use(u).label.lower() for u in uses_for_role(role)) or "none"
        raise ValidationError(
            {
                "use": USE_NOT_ALLOWED.format(
                    role=Role(role).label.lower(), use=use_label(use), uses=allowed
                )
            }
        )


@sensitive_variables("secret", "otp", "cleaned_secret", "cleaned_otp")
def credential_create(
    *,
    membership: Membership,
    label: str,
    api_key: str,
    secret: str,
    otp: str | None,
    account: KrakenAccount,
    use: str,
    probe: bool = True,
    designated: bool = False,
    request: HttpRequest | None = None,
) -> Credential:
    """Store a Kraken API key pair on `account` for `membership`, sealed, and (by default)
    probe it; `designated` makes it the account's key for unattended work of its use.

    Needs no request, so the demo-data command can call it; the view enforces step-up.
    Raises ValidationError (field-keyed) for bad input (an account of another organization or
    archived included), PermissionDenied when a member who is neither owner nor admin asks for
    a designated key, and crypto.VaultError when the keyring is missing or wrong, before
    anything is written.
    """
    errors: dict[str, list[str]] = {}
    try:
        api_key, cleaned_secret, cleaned_otp = clean_key_pair(
            api_key=api_key, secret=secret, otp=otp
        )
    except ValidationError as error:
        errors.update(error.message_dict)
    label = label.strip()
    if not label:
        errors["label"] = [LABEL_REQUIRED]
    if use not in Use.values:
        errors["use"] = [f"Choose one of: {', '.join(Use.labels)}."]
    if account.org_id != membership.org_id or not account.is_active:
        errors["account"] = [ACCOUNT_UNAVAILABLE]
    if errors:
        raise ValidationError(errors)
    if designated and membership.role not in _DESIGNATORS:
        raise PermissionDenied(DESIGNATION_NEEDS_MANAGER)
    crypto.keyring_check()  # Refuse before writing anything if the vault cannot seal.

    try:
        with transaction.atomic():
            # Locks the organization's row, then reads the member's role again.
            _check_role_allows(membership=membership, use=use)
            # The account row is locked next (archiving takes the same two locks in the same
            # order), so an archive cannot slip in between this check and the insert.
            if (
                not KrakenAccount.objects.select_for_update()
                .filter(pk=account.pk, archived_at__isnull=True)
                .exists()
            ):
                raise ValidationError({"account": ACCOUNT_UNAVAILABLE})
            _check_free(
                membership=membership,
                account=account,
                use=use,
                api_key=api_key,
                designated=designated,
            )
            credential = Credential(
                org=membership.org,
                owner=membership,
                label=label[:80],
                api_key=api_key,
                account=account,
                use=use,
                designated=designated,
                probe_status=(
                    Credential.ProbeStatus.PENDING if probe else Credential.ProbeStatus.NOT_CHECKED
                ),
            )
            credential.full_clean(exclude=["wrapped_key", "secret_ciphertext", "otp_ciphertext"])
            # The row needs its id first: the id is part of the ciphertexts' associated data.
            credential.save(force_insert=True)
            sealed = crypto.seal(
                binding=_binding(credential), secret=cleaned_secret, otp=cleaned_otp
            )
            credential.kek_id = sealed.kek_id
            credential.wrapped_key = sealed.wrapped_key
            credential.secret_ciphertext = sealed.secret_ciphertext
            credential.otp_ciphertext = sealed.otp_ciphertext
            credential.save(
                update_fields=["kek_id", "wrapped_key", "secret_ciphertext", "otp_ciphertext"]
            )
            audit_record(
                action="vault.credential.create",
                actor=membership,
                target=credential,
                detail={**_audit_detail(credential), "has_2fa": cleaned_otp is not None},
                request=request,
            )
            if designated:
                audit_record(
                    action="vault.credential.designate",
                    actor=membership,
                    target=credential,
                    detail=_audit_detail(credential),
                    request=request,
                )
            if probe:
                _enqueue_probe(credential.pk)
    except IntegrityError:
        # A concurrent request stored the same key or use first; report it like the pre-check.
        _check_free(
            membership=membership,
            account=account,
            use=use,
            api_key=api_key,
            designated=designated,
        )
        # The clash is gone again (revoked meanwhile): a form error, never a 500.
        raise ValidationError(CONCURRENT_CHANGE) from None
    logger.info("vault: credential %s stored for membership %s", credential.pk, membership.pk)
    return credential


# The states a key can still be revoked from (its secret still exists): the ones whose sealed
# secret must still open, so key rotation re-wraps them too.
_LIVE = (Credential.Status.ACTIVE, Credential.Status.CANCEL_ONLY)
LIVE_STATUSES = _LIVE
_WIPED: dict[str, Any] = {
    "kek_id": "",
    "wrapped_key": b"",
    "secret_ciphertext": b"",
    "otp_ciphertext": None,
}


@transaction.atomic
def credential_revoke(
    *,
    credential: Credential,
    actor: Membership,
    reason: str = "",
    request: HttpRequest | None = None,
) -> Credential:
    """Mark the key revoked and destroy its sealed secret; the row stays for the record.

    An owner or admin revoking another member's key (the oversight page) records who did it
    as the reason, which the key's owner sees on their keys page."""
    now = timezone.now()
    if not reason and actor.pk != credential.owner_id:
        reason = REVOKED_BY_OVERSEER.format(
            email=actor.user.email, role=actor.get_role_display().lower()
        )
    updated = Credential.objects.filter(pk=credential.pk, status__in=_LIVE).update(
        status=Credential.Status.REVOKED,
        revoked_at=now,
        updated_at=now,
        status_reason=reason[:300],
        **_WIPED,
    )
    if not updated:
        raise ValidationError(ALREADY_REVOKED)
    credential.refresh_from_db()
    detail = _audit_detail(credential)
    if reason:
        detail["reason"] = credential.status_reason
    audit_record(
        action="vault.credential.revoke",
        actor=actor,
        org=credential.org,
        target=credential,
        detail=detail,
        request=request,
    )
    return credential


def credentials_restrict_for_member(
    *,
    membership: Membership,
    actor: Membership,
    old_role: str,
    new_role: str | None,
    request: HttpRequest | None = None,
) -> list[int]:
    """Inside a demotion's or removal's transaction (`new_role` None), restrict the member's
    keys to what the new role allows. Returns the ids of the keys it changed.

    A trading key the new role does not allow becomes cancel-only: the member's open orders
    must still be cancellable (by them and by the organization's kill switch) until none are
    left. Funding and read-only keys serve nothing once their use is gone: they are revoked.
    Each change is audited and its reason recorded on the key; the member is emailed after
    commit.
    """
    org = membership.org
    changed: list[int] = []
    reasons: list[str] = []
    keys = Credential.objects.select_for_update().filter(
        owner_id=membership.pk, status=Credential.Status.ACTIVE
    )
    for credential in keys:
        if new_role is not None and role_allows_use(new_role, credential.use):
            continue
        fields = {
            "org": org.name,
            "old": Role(old_role).label.lower(),
            "new": Role(new_role).label.lower() if new_role else "",
            "use": use_label(credential.use),
        }
        if credential.use == Use.TRADING:
            template = CANCEL_ONLY_ON_ROLE_CHANGE if new_role else CANCEL_ONLY_ON_REMOVAL
            reason = template.format(**fields)[:300]
            Credential.objects.filter(pk=credential.pk).update(
                status=Credential.Status.CANCEL_ONLY,
                status_reason=reason,
                updated_at=timezone.now(),
            )
            audit_record(
                action="vault.credential.cancel_only",
                actor=actor,
                org=org,
                target=credential,
                detail={**_audit_detail(credential), "reason": reason},
                request=request,
            )
        else:
            template = REVOKED_ON_ROLE_CHANGE if new_role else REVOKED_ON_REMOVAL
            reason = template.format(**fields)[:300]
            credential_revoke(credential=credential, actor=actor, reason=reason, request=request)
        changed.append(credential.pk)
        reasons.append(f"“{credential.label}”: {reason}")
    if changed:
        from apps.vault.tasks import keys_restricted_email_task

        transaction.on_commit(
            partial(keys_restricted_email_task.delay, membership.pk, reasons), robust=True
        )
    return changed


@transaction.atomic
def credential_delete(
    *, credential: Credential, actor: Membership, request: HttpRequest | None = None
) -> None:
    audit_record(
        action="vault.credential.delete",
        actor=actor,
        org=credential.org,
        target=credential,
        detail={**_audit_detail(credential), "status": credential.status},
        request=request,
    )
    credential.delete()


@transaction.atomic
def credential_designate(
    *,
    credential: Credential,
    actor: Membership,
    designated: bool,
    request: HttpRequest | None = None,
) -> Credential:
    """Make a key the one unattended work uses for its account and use, or withdraw that.

    Owners and admins decide (the view asks for a fresh step-up), and only for a key that an
    owner or admin stored: the designated key acts for the organization, not for a member.
    """
    # Both roles are read again under the organization's lock (the lock membership changes
    # take first): the objects the request loaded may predate a demotion or removal that has
    # committed since, and one committing now waits until this change is done.
    Organization.objects.select_for_update().filter(pk=credential.org_id).first()
    actor_role = (
        Membership.objects.filter(pk=actor.pk, org_id=credential.org_id)
        .values_list("role", flat=True)
        .first()
    )
    if actor_role not in _DESIGNATORS:
        raise PermissionDenied(DESIGNATION_NEEDS_MANAGER)
    credential = (
        Credential.objects.select_for_update()
        .select_related("owner", "account")
        .get(pk=credential.pk)
    )
    if not credential.is_active:
        raise ValidationError(CREDENTIAL_NOT_ACTIVE)
    if credential.designated == designated:
        return credential
    # The holder as read under the lock (the base manager: a removed membership is still
    # found). Withdrawing a designation only reduces what the key does, so it needs no check.
    key_holder = credential.owner
    if designated and (not key_holder.is_active or key_holder.role not in _DESIGNATORS):
        raise ValidationError(DESIGNATED_KEY_HOLDER)
    try:
        with transaction.atomic():
            credential.designated = designated
            credential.save(update_fields=["designated", "updated_at"])
    except IntegrityError:
        names = {
            "use": credential.get_use_display().lower(),
            "account": credential.account.label,
            "label": "another key",
        }
        message = DUPLICATE_DESIGNATED if designated else DUPLICATE_USE
        raise ValidationError(message.format(**names)) from None
    audit_record(
        action="vault.credential.designate" if designated else "vault.credential.undesignate",
        actor=actor,
        target=credential,
        detail=_audit_detail(credential),
        request=request,
    )
    return credential


def credentials_refuse_archive(*, account: KrakenAccount) -> None:
    """Called while an account is being archived (apps.orgs.signals): a key on it must be
    revoked first, or it would keep acting on an account the organization retired."""
    # A cancel-only key still cancels orders on the account, so it counts too.
    count = Credential.objects.filter(account=account, status__in=_LIVE).count()
    if count:
        raise ValidationError(ACCOUNT_HAS_KEYS.format(count=count))


def credential_test(*, credential: Credential) -> Credential:
    """Ask for a fresh permission probe; the worker picks it up after commit."""
    now = timezone.now()
    with transaction.atomic():
        updated = (
            Credential.objects.filter(pk=credential.pk, status=Credential.Status.ACTIVE)
            .exclude(
                probe_status=Credential.ProbeStatus.RUNNING,
                probe_started_at__gt=now - PROBE_STALE_AFTER,
            )
            .update(probe_status=Credential.ProbeStatus.PENDING, updated_at=now)
        )
        if not updated:
            credential.refresh_from_db()
            raise ValidationError(
                PROBE_ALREADY_RUNNING if credential.is_active else CREDENTIAL_NOT_ACTIVE
            )
        _enqueue_probe(credential.pk)
    credential.refresh_from_db()
    return credential


def _check_use_allowed(
    credential: Credential, purpose: KeyPurpose, for_member_id: int | None
) -> None:
    """Raise KeyUseRefused unless `credential` may be opened for `purpose` right now."""
    if credential.status not in _LIVE:
        raise CredentialUnavailable(CREDENTIAL_NOT_ACTIVE)
    use = credential.use
    wanted_use = _PURPOSE_USE.get(purpose)
    if wanted_use is not None and use != wanted_use:
        raise KeyUseRefused(KEY_WRONG_USE.format(use=Use(use).label.lower(), purpose=purpose))
    if purpose in _CANCELLING:
        # Cancelling only reduces risk: a cancel-only key serves it, whatever its owner's
        # role now. Which orders it may cancel is the trading work's rule (the owner's own).
        # A task acting for a member opens only that member's own key (or the account's
        # designated key, for orders placed with it) to cancel; the kill switch acts for the
        # organization.
        if (
            purpose == KeyPurpose.CANCEL
            and for_member_id is not None
            and for_member_id != credential.owner_id
        ):
            in_org = Membership.objects.filter(pk=for_member_id, org_id=credential.org_id)
            if not (credential.designated and in_org.exists()):
                raise KeyUseRefused(KEY_NOT_THEIRS_TO_CANCEL)
        return
    if credential.is_cancel_only:
        raise KeyUseRefused(KEY_CANCEL_ONLY.format(use=use_label(use)))
    owner = credential.owner  # the base manager: a removed membership is still found
    if not owner.is_active:
        raise KeyUseRefused(KEY_OWNER_REMOVED)
    if not role_allows_use(owner.role, use):
        raise KeyUseRefused(
            KEY_ROLE_LOST.format(role=owner.get_role_display().lower(), use=use_label(use))
        )
    if credential.designated and owner.role not in _DESIGNATORS:
        raise KeyUseRefused(KEY_DESIGNATED_HOLDER_GONE)
    if purpose in (KeyPurpose.TRADE, KeyPurpose.FUND):
        # Only a key whose permissions were checked may commit or move funds: a key stored
        # while the broker was down (probe pending for ever), a failed check or a power left
        # undetermined says nothing about what a leaked key could do.
        if credential.probe_status != Credential.ProbeStatus.DONE:
            raise KeyNotChecked(KEY_NOT_CHECKED)
        if not credential.org.allow_overprivileged_keys:
            from apps.vault.policy import labels, unsettled_powers

            permissions = credential.permissions or {}
            dangerous = assess(use=use, permissions=permissions).dangerous_excess
            if dangerous:
                raise KeyUseRefused(
                    KEY_OVERPRIVILEGED.format(names=labels(dangerous).lower(), use=use_label(use))
                )
            unsettled = unsettled_powers(use=use, permissions=permissions)
            if unsettled:
                raise KeyNotChecked(
                    KEY_PERMISSIONS_UNDETERMINED.format(
                        names=labels(unsettled).lower(), use=use_label(use)
                    )
                )
    if for_member_id is not None:
        acting = Membership.objects.filter(pk=for_member_id, org_id=credential.org_id).first()
        needed = (
            USE_CAPABILITY[use] if purpose != KeyPurpose.READ else USE_CAPABILITY[Use.READ_ONLY]
        )
        if acting is None or not acting.can(needed):
            raise KeyUseRefused(KEY_ACTOR_NOT_ALLOWED.format(purpose=purpose))


@sensitive_variables("opened")
def credential_key_for_task(
    *, credential_id: int, purpose: KeyPurpose, for_member_id: int | None = None
) -> KrakenKey:
    """Decrypt a credential for use inside a task. The only place a secret leaves the vault.

    Every call checks again, from the database, that the key may serve `purpose`: its state
    (a cancel-only key only cancels), its use, its owner's current membership and role (and,
    with `for_member_id`, the role of the member the task acts for), and the organization's
    over-privilege setting. A task queued before a demotion therefore cannot use the key after
    it. Raises KeyUseRefused (a CredentialUnavailable) for those, CredentialUnavailable for a
    revoked or missing key and crypto.VaultError when the keyring cannot open it. Records when
    the key was last used.
    """
    from apps.kraken.client import KrakenKey

    purpose = KeyPurpose(purpose)
    credential = (
        Credential.objects.select_related("owner", "org", "account__parent")
        .filter(pk=credential_id)
        .first()
    )
    if credential is None:
        raise CredentialUnavailable("This key no longer exists.")
    _check_use_allowed(credential, purpose, for_member_id)
    opened = crypto.open_sealed(
        binding=_binding(credential),
        sealed=crypto.Sealed(
            kek_id=credential.kek_id,
            wrapped_key=bytes(credential.wrapped_key),
            secret_ciphertext=bytes(credential.secret_ciphertext),
            otp_ciphertext=(
                bytes(credential.otp_ciphertext) if credential.otp_ciphertext else None
            ),
        ),
    )
    Credential.objects.filter(pk=credential.pk).update(last_used_at=timezone.now())
    logger.info("vault: credential %s opened for %s", credential.pk, purpose)
    return KrakenKey(
        key_id=f"cred:{credential.pk}",
        api_key=credential.api_key,
        secret=opened.secret,
        otp=opened.otp,
        # The account's verification tier (its master's) and the account as the scope of
        # Kraken's per-account counters (apps.kraken.ratelimit).
        tier=credential.account.tier,
        account_ref=credential.account.counter_ref,
        # Opened to cancel, the key can only cancel (and read): the client refuses anything
        # else before sending, so a caller's label is not all that stands in the way.
        allowed_methods=CANCEL_METHODS if purpose in _CANCELLING else None,
    )


RewrapOutcome = Literal["rewrapped", "current", "failed"]


def credential_rewrap(*, credential_id: int) -> tuple[RewrapOutcome, str]:
    """Re-wrap one credential's data key under the newest KEK, in its own transaction.

    Safe to interrupt and repeat: the update is conditional on the KEK id read under a row
    lock, so a row is re-wrapped once, and a row already under the newest KEK is left alone.
    Returns the outcome and, for failures, a message that holds no secret.
    """
    try:
        with transaction.atomic():
            credential = (
                Credential.objects.select_for_update()
                .filter(pk=credential_id, status__in=_LIVE)
                .first()
            )
            if credential is None or not credential.kek_id:
                return "current", ""
            result = crypto.rewrap(
                binding=_binding(credential),
                kek_id=credential.kek_id,
                wrapped_key=bytes(credential.wrapped_key),
            )
            if result is None:
                return "current", ""
            new_id, new_wrapped = result
            updated = Credential.objects.filter(pk=credential.pk, kek_id=credential.kek_id).update(
                kek_id=new_id, wrapped_key=new_wrapped
            )
            return ("rewrapped", "") if updated else ("current", "")
    except crypto.VaultUnavailable:
        raise
    except crypto.VaultError as error:
        return "failed", str(error)
