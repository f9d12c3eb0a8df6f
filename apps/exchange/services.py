"""Exactly-once exchange operations: prepare, send once, reconcile (../shared/ARCHITECTURE.md §1).

    PREPARED ──claim (conditional UPDATE)──▶ SENDING ──answer──▶ DONE | REJECTED
                                                │
                                                └─ lost answer / 5xx / internal error ─▶ UNKNOWN
    UNKNOWN | stale SENDING ──finder──▶ DONE | NOT_PLACED (after N spaced misses)

- `operation_prepare` writes the row in the caller's transaction (with the business row and
  the audit row) and enqueues the send on commit, with the id only.
- `operation_send` claims PREPARED → SENDING with a conditional UPDATE and its row count, so a
  duplicated or redelivered task finds nothing to claim; the claim commits *before* the call,
  so a worker killed mid-call leaves a SENDING row the reconciler picks up. The call carries
  OperationRef: the Kraken client refuses a write without one.
- `operation_reconcile` never resends: it asks the kind's finder (finders.py) whether Kraken
  shows the call's effect.

Every state change writes an OperationEvent and an audit record in one transaction, then (on
commit) publishes the operation's card to the requester and the organization's operation
managers, and calls the result hooks of its kind (hooks.py).
"""

from __future__ import annotations

import logging
import random
import uuid
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.core.trail import audit_record
from apps.exchange import balance_records, finders, live, records
from apps.exchange.credentials import read_credential
from apps.exchange.hooks import hooks_on_commit, send_guard_refusal
from apps.exchange.models import (
    SETTLED,
    AccountBalance,
    Kind,
    Operation,
    OperationEvent,
    State,
    queue_for,
)
from apps.exchange.streams.hooks import balance_hooks_on_commit
from apps.kraken.client import OperationRef, is_validate_only, kraken_private
from apps.kraken.errors import KrakenError, UnknownOutcomeError
from apps.kraken.naming import decimal_to_wire
from apps.orgs.models import KrakenAccount, Membership, Organization
from apps.vault import crypto
from apps.vault.models import Credential
from apps.vault.services import CredentialUnavailable, KeyPurpose, credential_key_for_task

logger = logging.getLogger(__name__)

OPERATION_IN_FLIGHT = (
    "A similar {kind} is still in progress on this account; Kraken could not tell the two "
    "apart, so wait until it settles (see Operations)."
)
SECRET_PARAMETER = "Operation parameters never carry secrets or nonces ({name})."  # noqa: S105
PARAMETER_MISSING = "{kind} needs the parameter “{name}”."
CREDENTIAL_OTHER_ORG = "This key belongs to another organization."
CREDENTIAL_REVOKED = "This key has been revoked and can no longer be used."
FLOAT_PARAMETER = "Amounts are Decimal or text, never float ({name})."
CL_ORD_ID_WITH_CLOSE = "Kraken refuses cl_ord_id on an order with a conditional close."
ALREADY_SETTLED = "This operation is settled; there is nothing to reconcile."
RECONCILE_REQUESTED = "Reconciliation of operation {pk} requested."

# Parameters that must never be stored: the client adds otp and nonce itself.
SECRET_NAMES = frozenset({"otp", "nonce", "secret", "api_key", "api_secret", "password"})

# What each kind must name, so that its finder can recognise it afterwards.
REQUIRED: dict[str, tuple[str, ...]] = {
    Kind.ADD_ORDER: ("pair", "type", "ordertype", "volume"),
    Kind.AMEND_ORDER: (),
    Kind.CANCEL_ORDER: (),
    Kind.CANCEL_ALL: (),
    Kind.WITHDRAW: ("asset", "key", "amount"),
    Kind.WITHDRAW_CANCEL: ("asset", "refid"),
    Kind.ACCOUNT_TRANSFER: ("asset", "amount", "from", "to"),
    Kind.EARN_ALLOCATE: ("strategy_id", "amount"),
    Kind.EARN_DEALLOCATE: ("strategy_id", "amount"),
}

# Kraken's userref is a signed 32-bit integer.
USERREF_MAX = 2**31 - 1


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def _jsonable(value: Any, name: str = "") -> Any:
    """Parameters and results as JSON: Decimals in plain notation, never floats."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, Decimal):
        return decimal_to_wire(value)
    if isinstance(value, float):
        raise ValidationError(FLOAT_PARAMETER.format(name=name))
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{name}.{k}" if name else str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, name) for v in value]
    return str(value)


def _result_json(value: Any) -> Any:
    """Kraken's answer as JSON (its numbers arrive as Decimal)."""
    if isinstance(value, float):
        return decimal_to_wire(Decimal(str(value)))
    try:
        return _jsonable(value)
    except ValidationError:
        return str(value)


def _norm(value: Any) -> str:
    return str(value or "").replace(" ", "").upper()


def _scope(credential: Credential) -> str:
    """Kraken keeps orders, withdrawals and Earn allocations per account, not per key: two
    keys on one account share one in-flight slot."""
    return f"acct{credential.account_id}"


# What the vault opens the key for (it checks the key's use, state and owner every time): a
# cancel is allowed on a cancel-only key; Earn moves funds, so it needs a funding key.
PURPOSE: dict[str, KeyPurpose] = {
    Kind.ADD_ORDER: KeyPurpose.TRADE,
    Kind.AMEND_ORDER: KeyPurpose.TRADE,
    Kind.CANCEL_ORDER: KeyPurpose.CANCEL,
    Kind.CANCEL_ALL: KeyPurpose.CANCEL,
    Kind.WITHDRAW: KeyPurpose.FUND,
    Kind.WITHDRAW_CANCEL: KeyPurpose.FUND,
    Kind.ACCOUNT_TRANSFER: KeyPurpose.FUND,
    Kind.EARN_ALLOCATE: KeyPurpose.FUND,
    Kind.EARN_DEALLOCATE: KeyPurpose.FUND,
}


def _acting_member_id(operation: Operation) -> int | None:
    """The requester's membership (removed ones too, so the vault refuses them): a task queued
    before the requester was demoted or removed must not act for them afterwards."""
    if operation.requested_by_id is None:
        return None
    membership = Membership.all_objects.filter(
        org_id=operation.org_id, user_id=operation.requested_by_id
    ).first()
    return membership.pk if membership is not None else 0


def _identify(
    kind: str, params: dict[str, Any], credential: Credential, extra: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """(reference, in_flight_key) for an operation; adds our cl_ord_id/userref to AddOrder."""
    scope = _scope(credential)
    reference: dict[str, Any] = dict(extra)
    key = ""
    if kind == Kind.ADD_ORDER:
        if params.get("close") or params.get("userref") not in (None, ""):
            # Kraken refuses cl_ord_id with a conditional close: such an order is found by
            # userref together with pair, side, volume and time (finders._find_by_userref).
            if params.get("cl_ord_id"):
                raise ValidationError(CL_ORD_ID_WITH_CLOSE)
            if params.get("userref") in (None, ""):
                params["userref"] = random.randint(1, USERREF_MAX)  # noqa: S311 - not secret
            reference.update(
                userref=params["userref"],
                pair=params["pair"],
                type=params["type"],
                volume=params["volume"],
            )
            key = f"AddOrder:{scope}:{params['userref']}:{_norm(params['pair'])}:{params['type']}"
        else:
            params.setdefault("cl_ord_id", str(uuid.uuid4()))
            reference["cl_ord_id"] = params["cl_ord_id"]
    elif kind in (Kind.AMEND_ORDER, Kind.CANCEL_ORDER):
        order = params.get("cl_ord_id") or params.get("txid")
        if not order:
            raise ValidationError(PARAMETER_MISSING.format(kind=kind, name="txid"))
        reference["cl_ord_id" if params.get("cl_ord_id") else "txid"] = order
        # One amend (or cancel) per order at a time: the amend history cannot say which of
        # two alike amends was ours.
        key = f"{kind}:{scope}:{order}"
    elif kind == Kind.CANCEL_ALL:
        key = f"CancelAll:{scope}"
    elif kind == Kind.WITHDRAW:
        reference.update(asset=params["asset"], key=params["key"], amount=params["amount"])
        key = f"Withdraw:{scope}:{_norm(params['asset'])}:{params['key']}"
    elif kind == Kind.WITHDRAW_CANCEL:
        reference.update(asset=params["asset"], refid=params["refid"])
        key = f"WithdrawCancel:{scope}:{params['refid']}"
    elif kind == Kind.ACCOUNT_TRANSFER:
        reference.update(asset=params["asset"], amount=params["amount"], **{"from": params["from"]})
        reference["to"] = params["to"]
        key = (
            f"AccountTransfer:{_norm(params['from'])}:{_norm(params['to'])}:"
            f"{_norm(params['asset'])}"
        )
    elif kind in (Kind.EARN_ALLOCATE, Kind.EARN_DEALLOCATE):
        reference.update(strategy_id=params["strategy_id"], amount=params["amount"])
        # Kraken runs one (de)allocation per strategy at a time, and its status call cannot
        # tell two apart.
        key = f"Earn:{scope}:{params['strategy_id']}"
    return reference, key


def operation_prepare(
    *,
    org: Organization,
    credential: Credential,
    kind: str,
    params: dict[str, Any],
    reference: dict[str, Any] | None = None,
    requested_by: Any = None,
) -> Operation:
    """Write one operation (PREPARED) in the caller's transaction; it is sent after commit.

    Call it inside the transaction that writes the business row (order, withdrawal,
    allocation), so both commit or neither does. `params` are Kraken's request parameters
    (Decimals, never floats; never otp or nonce). `reference` adds fields the finder may use
    that are not request parameters (e.g. the Earn strategy's asset). For AddOrder the portal
    sets `cl_ord_id` (a UUID), or a `userref` where Kraken refuses cl_ord_id (conditional
    close). Raises ValidationError (OPERATION_IN_FLIGHT when an alike operation is unsettled).
    """
    kind = Kind(kind)
    if credential.org_id != org.pk:
        raise ValidationError(CREDENTIAL_OTHER_ORG)
    # A key left cancel-only by its member's demotion still cancels (the vault checks, at
    # send time, that it cancels only for that member or the organization's kill switch).
    cancelling = credential.is_cancel_only and PURPOSE[kind] == KeyPurpose.CANCEL
    if not credential.is_active and not cancelling:
        raise ValidationError(CREDENTIAL_REVOKED)
    for name in params:
        if name.lower() in SECRET_NAMES:
            raise ValidationError(SECRET_PARAMETER.format(name=name))
    clean: dict[str, Any] = _jsonable(dict(params))
    for name in REQUIRED[kind]:
        if clean.get(name) in (None, ""):
            raise ValidationError(PARAMETER_MISSING.format(kind=kind.label, name=name))
    validate_only = is_validate_only(kind, clean)
    ref, in_flight_key = _identify(kind, clean, credential, _jsonable(dict(reference or {})))
    operation = Operation(
        org=org,
        account_id=credential.account_id,
        credential=credential,
        kind=kind,
        params=clean,
        reference=ref,
        validate_only=validate_only,
        requested_by=requested_by if getattr(requested_by, "pk", None) else None,
        # A validate-only call acts on nothing, so it blocks nothing.
        in_flight_key="" if validate_only else in_flight_key,
    )
    try:
        # A savepoint: the caller's transaction survives a refused insert.
        with transaction.atomic():
            operation.save()
    except IntegrityError:
        raise ValidationError(OPERATION_IN_FLIGHT.format(kind=kind.label.lower())) from None
    with transaction.atomic():
        OperationEvent.objects.create(
            operation=operation, to_state=State.PREPARED, message="Prepared", detail=ref
        )
        audit_record(
            action="exchange.operation.prepared",
            actor=operation.requested_by,
            org=org,
            target=operation,
            detail={"kind": kind, "reference": ref, "validate_only": validate_only},
        )
        transaction.on_commit(partial(_enqueue_send, operation.pk, kind))
        live.operation_changed_on_commit(operation)
    return operation


def _enqueue_send(operation_id: int, kind: str) -> None:
    from apps.exchange.tasks import operation_send_task

    operation_send_task.apply_async((operation_id,), queue=queue_for(kind))


def _enqueue_reconcile(operation_id: int, kind: str) -> None:
    from apps.exchange.tasks import operation_reconcile_task

    operation_reconcile_task.apply_async((operation_id,), queue=queue_for(kind))


def _transition(
    operation: Operation,
    *,
    to: str,
    from_states: tuple[str, ...],
    message: str,
    detail: dict[str, Any] | None = None,
    actor: Any = None,
    **fields: Any,
) -> bool:
    """Move the operation if it is still in one of `from_states` (conditional UPDATE), with
    its event, audit record, live update and, for a settled state, the result hooks."""
    now = timezone.now()
    values: dict[str, Any] = {"state": to, "updated_at": now, **fields}
    if to in SETTLED:
        values["settled_at"] = now
    with transaction.atomic(durable=True):
        moved = Operation.objects.filter(pk=operation.pk, state__in=from_states).update(**values)
        if not moved:
            return False
        previous = operation.state
        for name, value in values.items():
            setattr(operation, name, value)
        OperationEvent.objects.create(
            operation=operation,
            from_state=previous,
            to_state=to,
            message=message[:300],
            detail=detail or {},
        )
        audit_record(
            action=f"exchange.operation.{to}",
            actor=actor,
            org=operation.org,
            target=operation,
            detail={
                "kind": operation.kind,
                "from": previous,
                "reference": operation.reference,
                **({"error": operation.error_code} if operation.error_code else {}),
                **(detail or {}),
            },
        )
        if to == State.DONE:
            records.record_done(operation)
        live.operation_changed_on_commit(operation)
        if to in SETTLED:
            hooks_on_commit(kind=operation.kind, state=to, operation_id=operation.pk)
    return True


def operation_send(*, operation_id: int) -> Operation | None:
    """Send a PREPARED operation once. Returns None when there was nothing to claim (sent
    already, or by another worker): a redelivered task is harmless."""
    now = timezone.now()
    # The claim, its event and its audit record commit together, before anything leaves: a
    # worker that dies from here on leaves SENDING, which the reconciler resolves without
    # resending; one that fails before the commit leaves PREPARED, which is safe to send.
    with transaction.atomic(durable=True):
        claimed = Operation.objects.filter(pk=operation_id, state=State.PREPARED).update(
            state=State.SENDING, sent_at=now, updated_at=now
        )
        if not claimed:
            return None
        operation = Operation.objects.select_related("org").get(pk=operation_id)
        OperationEvent.objects.create(
            operation=operation,
            from_state=State.PREPARED,
            to_state=State.SENDING,
            message="Sending to Kraken",
        )
        audit_record(
            action="exchange.operation.sending",
            org=operation.org,
            target=operation,
            detail={"kind": operation.kind, "reference": operation.reference},
        )
        live.operation_changed_on_commit(operation)
    operation.state = State.SENDING
    sending = (State.SENDING,)
    refusal = send_guard_refusal(operation) if not operation.validate_only else None
    if refusal is not None:
        # A business rule that changed since the operation was prepared (the trading desk's
        # kill switch): nothing was sent.
        _transition(
            operation,
            to=State.REJECTED,
            from_states=sending,
            message=f"Not sent: {refusal}"[:300],
            error_code="guard",
            error_message=refusal[:1000],
        )
        return operation
    try:
        key = credential_key_for_task(
            credential_id=operation.credential_id,
            purpose=PURPOSE[operation.kind],
            for_member_id=_acting_member_id(operation),
        )
    except (CredentialUnavailable, crypto.VaultError) as error:
        # Nothing was sent: the key could not be opened.
        _transition(
            operation,
            to=State.REJECTED,
            from_states=sending,
            message="Not sent: the key could not be used",
            error_code="vault",
            error_message=str(error)[:1000],
        )
        return operation
    try:
        result = kraken_private(
            key, operation.kind, operation.params, operation=OperationRef(str(operation.pk))
        )
    except UnknownOutcomeError as error:
        _transition(
            operation,
            to=State.UNKNOWN,
            from_states=sending,
            message="No answer says whether Kraken acted; the reconciler will look",
            detail={"detail": error.detail or ""},
            error_code=(error.code or error.detail or "unknown")[:200],
            error_message=error.hint,
        )
    except KrakenError as error:
        # A definite refusal (errors.ERROR_TABLE), or a call that never left (no connection,
        # no rate budget, key busy): nothing happened on Kraken.
        _transition(
            operation,
            to=State.REJECTED,
            from_states=sending,
            message=f"Kraken refused it: {error.code or error.detail}",
            error_code=(error.code or error.detail or "error")[:200],
            error_message=error.hint,
        )
    except Exception as error:
        # A bug or an unexpected transport failure after the request may have left: treat the
        # outcome as unknown (reconcile), never as "not sent".
        logger.exception("exchange: operation %s failed while sending", operation.pk)
        _transition(
            operation,
            to=State.UNKNOWN,
            from_states=sending,
            message="Internal error while sending; the reconciler will look",
            error_code=f"internal:{type(error).__name__}"[:200],
            error_message="",
        )
    else:
        _transition(
            operation,
            to=State.DONE,
            from_states=sending,
            message="Kraken carried it out" if not operation.validate_only else "Validated",
            result=_result_json(result),
        )
    return operation


def _stale_sending_after() -> timedelta:
    """A SENDING row older than this has lost its worker: the HTTP timeout, the waits the
    client may spend before sending (rate budget, the key's sequencer lease), and a margin."""
    return timedelta(
        seconds=_setting("KRAKEN_HTTP_TIMEOUT", 10)
        + _setting("KRAKEN_RATE_MAX_WAIT", 45)
        + _setting("KRAKEN_SEQUENCER_WAIT", 30)
        + _setting("EXCHANGE_STALE_MARGIN", 30)
    )


def _stale_prepared_after() -> timedelta:
    # A PREPARED row is sent within seconds; one this old lost its task (a broker purge, a
    # worker killed holding the prefetched message). Sending it is safe: it never left.
    return timedelta(seconds=_setting("EXCHANGE_PREPARED_STALE", 120))


def operation_reconcile(*, operation_id: int) -> Operation:
    """Resolve an UNKNOWN (or stale SENDING) operation through its finder; never resends.

    Found → DONE with the ids found. Absent → a miss; after EXCHANGE_NOT_PLACED_MISSES misses,
    each at least EXCHANGE_MISS_SPACING seconds after the last (and after the send), →
    NOT_PLACED: Kraken may take a moment to list a fresh order or withdrawal, so one miss
    proves nothing. Undecidable (Kraken down) → stays UNKNOWN. A stale PREPARED operation
    (its task was lost) is enqueued again: it never left, and the claim makes a duplicate
    harmless.
    """
    operation = Operation.objects.select_related("org").get(pk=operation_id)
    now = timezone.now()
    if operation.state == State.PREPARED:
        if now - operation.created_at > _stale_prepared_after():
            _enqueue_send(operation.pk, operation.kind)
        return operation
    if operation.state == State.SENDING:
        sent = operation.sent_at or operation.updated_at
        if now - sent <= _stale_sending_after():
            return operation
        _transition(
            operation,
            to=State.UNKNOWN,
            from_states=(State.SENDING,),
            message="The worker stopped while sending; the reconciler will look",
            error_code="worker-lost",
        )
    if operation.state != State.UNKNOWN:
        return operation
    lease = timedelta(seconds=_setting("EXCHANGE_RECONCILE_LEASE", 120))
    leased = (
        Operation.objects.filter(pk=operation.pk, state=State.UNKNOWN)
        .filter(Q(reconcile_lease_until__isnull=True) | Q(reconcile_lease_until__lt=now))
        .update(
            reconcile_lease_until=now + lease,
            reconcile_attempts=F("reconcile_attempts") + 1,
            last_reconciled_at=now,
        )
    )
    if not leased:
        return operation  # another reconciler is looking right now
    try:
        _reconcile_once(operation)
    finally:
        Operation.objects.filter(pk=operation.pk).update(reconcile_lease_until=None)
    operation.refresh_from_db()
    return operation


def _reconcile_once(operation: Operation) -> None:
    unknown = (State.UNKNOWN,)
    try:
        # Looking only reads: any use of key serves, and a key made cancel-only since still
        # reads its own account.
        key = credential_key_for_task(
            credential_id=operation.credential_id, purpose=KeyPurpose.READ
        )
    except (CredentialUnavailable, crypto.VaultError) as error:
        _note(operation, f"The key cannot be opened to look: {error}")
        return
    verdict = finders.find(operation, key)
    now = timezone.now()
    if isinstance(verdict, finders.Found):
        _transition(
            operation,
            to=State.DONE,
            from_states=unknown,
            message="Found on Kraken",
            detail={"found": _result_json(verdict.result)},
            result=_result_json(verdict.result),
            reconcile_note="",
        )
        return
    if isinstance(verdict, finders.Undecidable):
        _note(operation, verdict.note)
        return
    if verdict.certain:
        _transition(
            operation,
            to=State.NOT_PLACED,
            from_states=unknown,
            message=f"Not placed: {verdict.note}",
            reconcile_note="",
        )
        return
    needed = int(_setting("EXCHANGE_NOT_PLACED_MISSES", 3))
    spacing = timedelta(seconds=_setting("EXCHANGE_MISS_SPACING", 20))
    sent = operation.sent_at or operation.created_at
    last = operation.last_miss_at or sent
    if now - last < spacing:
        _note(operation, "Not found yet; looking again shortly")
        return
    misses = operation.reconcile_misses + 1
    if misses >= needed:
        _transition(
            operation,
            to=State.NOT_PLACED,
            from_states=unknown,
            message=f"Not found on Kraken after {misses} looks; it was not carried out",
            detail={"misses": misses, "note": verdict.note},
            reconcile_misses=misses,
            last_miss_at=now,
            reconcile_note="",
        )
        return
    with transaction.atomic(durable=True):
        moved = Operation.objects.filter(pk=operation.pk, state=State.UNKNOWN).update(
            reconcile_misses=misses, last_miss_at=now, reconcile_note=verdict.note[:300]
        )
        if moved:
            OperationEvent.objects.create(
                operation=operation,
                from_state=State.UNKNOWN,
                to_state=State.UNKNOWN,
                message=f"Not found on Kraken (look {misses} of {needed})",
                detail={"note": verdict.note},
            )
            live.operation_changed_on_commit(operation)


def _note(operation: Operation, note: str) -> None:
    Operation.objects.filter(pk=operation.pk).update(reconcile_note=note[:300])
    with transaction.atomic():
        live.operation_changed_on_commit(operation)


def operations_due() -> list[tuple[int, str]]:
    """(id, kind) of the operations the reconciler should look at now: every UNKNOWN one whose
    lease is free, SENDING ones past the stale bound, PREPARED ones whose task was lost."""
    now = timezone.now()

    def not_looked_at_since(spacing: timedelta) -> Q:
        return Q(last_reconciled_at__isnull=True) | Q(last_reconciled_at__lt=now - spacing)

    # Each operation is looked at (enqueued) no more often than its kind of wait allows. An
    # UNKNOWN one: as often as the misses are spaced (looking every beat would spend the key's
    # REST budget, Ledgers costs 2, that trading needs). A stale SENDING or PREPARED one: once
    # per staleness period. Without this, a backlog behind busy workers (hundreds of orders
    # queued) had every beat enqueue another task for every waiting operation, and the queue
    # grew faster than the workers drained it (measured: 17,800 reconcile tasks for 700
    # operations in the desk's 500-order chaos run).
    stale_sending = _stale_sending_after()
    stale_prepared = _stale_prepared_after()
    due = Operation.objects.filter(
        Q(state=State.UNKNOWN)
        & (Q(reconcile_lease_until__isnull=True) | Q(reconcile_lease_until__lt=now))
        & not_looked_at_since(timedelta(seconds=_setting("EXCHANGE_MISS_SPACING", 20)))
        | Q(state=State.SENDING, sent_at__lt=now - stale_sending)
        & not_looked_at_since(stale_sending)
        | Q(state=State.PREPARED, created_at__lt=now - stale_prepared)
        & not_looked_at_since(stale_prepared)
    ).order_by("updated_at")
    return list(due.values_list("pk", "kind")[: int(_setting("EXCHANGE_RECONCILE_BATCH", 200))])


def operations_reconcile_due() -> int:
    """Enqueue a reconcile task per due operation, on its kind's queue, and note when, so the
    next beats leave it alone while that task waits its turn. Returns the count."""
    due = operations_due()
    Operation.objects.filter(pk__in=[operation_id for operation_id, _ in due]).update(
        last_reconciled_at=timezone.now()
    )
    for operation_id, kind in due:
        _enqueue_reconcile(operation_id, kind)
    return len(due)


def operation_reconcile_request(*, operation: Operation, membership: Membership) -> None:
    """ "Reconcile now" from the Operations page: audited, then enqueued on commit."""
    if operation.is_settled:
        raise ValidationError(ALREADY_SETTLED)
    with transaction.atomic(durable=True):
        audit_record(
            action="exchange.operation.reconcile_requested",
            actor=membership,
            target=operation,
            detail={"kind": operation.kind, "state": operation.state},
        )
        transaction.on_commit(partial(_enqueue_reconcile, operation.pk, operation.kind))


def private_read(
    *, credential: Credential, method: str, params: dict[str, Any] | None = None
) -> Any:
    """An idempotent private read (balances, orders, ledgers) with `credential`, for the apps
    above: apps/exchange is the only caller of Kraken's private methods, reads included."""
    key = credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.READ)
    return kraken_private(key, method, params or {})


def _earn_lock_types(credential: Credential) -> dict[str, str]:
    """{strategy id: lock type} from Earn/Strategies (every page)."""
    locks: dict[str, str] = {}
    cursor: str | None = None
    for _page in range(20):  # bounded: Kraken lists a few hundred strategies at most
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        answer = private_read(credential=credential, method="Earn/Strategies", params=params)
        for item in answer.get("items") or []:
            locks[str(item.get("id"))] = str((item.get("lock_type") or {}).get("type") or "")
        cursor = answer.get("next_cursor")
        if not cursor:
            break
    return locks


def balances_refresh(*, account: KrakenAccount) -> list[AccountBalance]:
    """Read the account's balances over REST with its designated read key (credentials.py)
    and write them (AccountBalance, source=rest): BalanceEx for the spot wallet and its hold,
    Earn/Allocations (with Earn/Strategies for each strategy's lock type) for the Earn
    wallets. For pages and tests without the streams process, and after a long outage.

    Raises NoCredential (no designated read key) or KrakenError. When the Earn calls fail
    (a key without Earn access), the spot rows are written and the Earn rows left as they were.
    Returns the rows that changed (their on_balance hooks run after commit).
    """
    credential = read_credential(account=account)
    spot = balance_records.spot_from_balance_ex(
        private_read(credential=credential, method="BalanceEx")
    )
    earn: dict[tuple[str, str], Decimal] | None
    try:
        allocations = private_read(
            credential=credential,
            method="Earn/Allocations",
            params={"hide_zero_allocations": True},
        )
        earn = balance_records.earn_from_allocations(allocations, _earn_lock_types(credential))
    except KrakenError as error:
        logger.warning("exchange: Earn balances of account %s unread: %s", account.pk, error)
        earn = None
    with transaction.atomic():
        rows = balance_records.rest_balances_write(account=account, spot=spot, earn=earn)
        for row in rows:
            balance_hooks_on_commit(row)
    return rows


def deposit_address_new(*, credential: Credential, asset: str, method: str) -> Any:
    """Ask Kraken for a new deposit address (DepositAddresses with new=true), for the treasury.

    Not idempotent (each call makes one more address) but it moves nothing, so it is no
    operation row: it is sent once and never retried; a lost answer leaves one unused address
    more, which the next listing shows. Raises KrakenError (UnknownOutcomeError when the
    answer was lost)."""
    key = credential_key_for_task(credential_id=credential.pk, purpose=KeyPurpose.READ)
    return kraken_private(
        key,
        "DepositAddresses",
        {"asset": asset, "method": method, "new": True},
        operation=OperationRef(f"deposit-address-{uuid.uuid4()}"),
    )
