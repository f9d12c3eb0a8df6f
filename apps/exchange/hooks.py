"""Result hooks: the business apps (trading, funding, staking) react to their operations'
outcomes without apps.exchange importing them (it sits below them).

Each registers, in its AppConfig.ready(), what to call per kind when an operation settles:

    operation_hook_register(Kind.WITHDRAW, on_done=..., on_rejected=..., on_not_placed=...)

A hook receives the settled Operation. It runs after the state change has committed (so it
never sees a state that could still roll back), in its own transaction; a hook that raises is
logged and does not undo the state change (the operation's row stays the truth, and the
business app can read it again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from django.db import transaction

from apps.exchange.models import Kind, Operation, State

logger = logging.getLogger(__name__)

Hook = Callable[[Operation], None]


@dataclass(frozen=True)
class HookSet:
    on_done: Hook | None = None
    on_rejected: Hook | None = None
    on_not_placed: Hook | None = None

    def for_state(self, state: str) -> Hook | None:
        return {
            State.DONE: self.on_done,
            State.REJECTED: self.on_rejected,
            State.NOT_PLACED: self.on_not_placed,
        }.get(State(state))


_hooks: dict[str, list[HookSet]] = {}


def operation_hook_register(
    kind: str,
    *,
    on_done: Hook | None = None,
    on_rejected: Hook | None = None,
    on_not_placed: Hook | None = None,
) -> None:
    """Call these when an operation of `kind` settles. Several apps may register per kind."""
    Kind(kind)  # ValueError for a kind that does not exist
    _hooks.setdefault(kind, []).append(
        HookSet(on_done=on_done, on_rejected=on_rejected, on_not_placed=on_not_placed)
    )


def operation_hooks_clear(kind: str | None = None) -> None:
    """For tests: forget the hooks of `kind` (or all)."""
    if kind is None:
        _hooks.clear()
    else:
        _hooks.pop(kind, None)


def _run(hook: Hook, operation_id: int) -> None:
    operation = Operation.objects.select_related("org", "credential").get(pk=operation_id)
    try:
        hook(operation)
    except Exception:
        logger.exception("exchange: result hook %r failed for operation %s", hook, operation_id)


def hooks_on_commit(*, kind: str, state: str, operation_id: int) -> None:
    """Schedule the hooks for a state change that is about to commit."""
    for hooks in _hooks.get(kind, []):
        hook = hooks.for_state(state)
        if hook is not None:
            transaction.on_commit(partial(_run, hook, operation_id))


# Send guards: a business app may stop an operation of a kind at the last moment before it is
# sent (the trading desk's kill switch halts orders already queued). A guard returns None to
# let it go, or the reason it must not be sent; the operation then ends REJECTED with that
# reason, never sent. Guards only ever stop a send, so an unknown outcome is never involved.
SendGuard = Callable[[Operation], "str | None"]
_guards: dict[str, list[SendGuard]] = {}


def send_guard_register(kind: str, guard: SendGuard) -> None:
    Kind(kind)
    _guards.setdefault(kind, []).append(guard)


def send_guards_clear(kind: str | None = None) -> None:
    """For tests: forget the guards of `kind` (or all)."""
    if kind is None:
        _guards.clear()
    else:
        _guards.pop(kind, None)


def send_guard_refusal(operation: Operation) -> str | None:
    """The first guard's reason not to send `operation`, or None. A guard that raises is
    logged and counts as a refusal: when in doubt, an order is not sent."""
    for guard in _guards.get(operation.kind, []):
        try:
            reason = guard(operation)
        except Exception:
            logger.exception("exchange: send guard %r failed for operation %s", guard, operation.pk)
            return "a check before sending failed"
        if reason:
            return reason
    return None
