"""Writes for the credential vault. Every change is one function, audited in its transaction.

Secrets enter only through `credential_create` and leave only through `credential_key_for_task`
(inside Celery tasks). Everything else handles ids and metadata.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from apps.core.trail import audit_record
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Role
from apps.vault import crypto
from apps.vault.models import Credential, Use
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
    "This account still has {count} active API key(s). Revoke them before archiving it."
)
CONCURRENT_CHANGE = "Another change to these keys happened at the same time. Please try again."
ALREADY_REVOKED = "This key is already revoked."
CREDENTIAL_NOT_ACTIVE = "This key has been revoked and can no longer be used."
PROBE_ALREADY_RUNNING = "A permission check for this key is already running."
LABEL_REQUIRED = "Give the key a label."

# A probe that has been "running" this long lost its worker; a new test may take over.
PROBE_STALE_AFTER = timedelta(minutes=5)


class CredentialUnavailable(Exception):
    """The credential cannot be used (revoked, or gone). The message is safe to show."""


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
    from apps.vault.tasks import credential_probe_task

    # Robust: if the broker is down the key is still saved; the probe stays "pending" and the
    # member can press "Test connection" again.
    transaction.on_commit(partial(credential_probe_task.delay, credential_id), robust=True)


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
            # The account row is locked so an archive cannot slip in between check and insert.
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


@transaction.atomic
def credential_revoke(
    *, credential: Credential, actor: Membership, request: HttpRequest | None = None
) -> Credential:
    """Mark the key revoked and destroy its sealed secret; the row stays for the record."""
    now = timezone.now()
    updated = Credential.objects.filter(pk=credential.pk, status=Credential.Status.ACTIVE).update(
        status=Credential.Status.REVOKED,
        revoked_at=now,
        updated_at=now,
        kek_id="",
        wrapped_key=b"",
        secret_ciphertext=b"",
        otp_ciphertext=None,
    )
    if not updated:
        raise ValidationError(ALREADY_REVOKED)
    credential.refresh_from_db()
    audit_record(
        action="vault.credential.revoke",
        actor=actor,
        org=credential.org,
        target=credential,
        detail=_audit_detail(credential),
        request=request,
    )
    return credential


def credentials_revoke_for_member(
    *, membership: Membership, actor: Membership, request: HttpRequest | None = None
) -> None:
    """Revoke every active key of a member who is leaving, inside the removal's transaction.

    The keys go with the membership (the foreign key cascades); revoking the active ones first
    audits each one and destroys its sealed secret, exactly as if the member had revoked it.
    """
    active_keys = Credential.objects.select_for_update().filter(
        owner=membership, status=Credential.Status.ACTIVE
    )
    for credential in active_keys:
        credential_revoke(credential=credential, actor=actor, request=request)


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
    actor_role = Membership.objects.filter(pk=actor.pk).values_list("role", flat=True).first()
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
    if designated and credential.owner.role not in _DESIGNATORS:
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
    count = Credential.objects.filter(account=account, status=Credential.Status.ACTIVE).count()
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


@sensitive_variables("opened")
def credential_key_for_task(*, credential_id: int, purpose: str) -> KrakenKey:
    """Decrypt a credential for use inside a task. The only place a secret leaves the vault.

    Raises CredentialUnavailable for a revoked or missing key and crypto.VaultError when the
    keyring cannot open it. Records when the key was last used.
    """
    from apps.kraken.client import KrakenKey

    credential = (
        Credential.objects.select_related("account__parent").filter(pk=credential_id).first()
    )
    if credential is None:
        raise CredentialUnavailable("This key no longer exists.")
    if not credential.is_active:
        raise CredentialUnavailable(CREDENTIAL_NOT_ACTIVE)
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
                .filter(pk=credential_id, status=Credential.Status.ACTIVE)
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
