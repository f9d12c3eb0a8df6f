"""Throttles on password guessing, on top of django-axes' lockout of one account from one address.

Two more rules, both kept in Redis and both checked before the password is:

- **Per account, from any address** (the email lower-cased, so "Owner@Demo.test" and
  "owner@demo.test" are one account): after SIGN_IN_DELAY_AFTER failures, each further attempt
  must come 2, 4, 8 ... seconds (at most SIGN_IN_DELAY_CAP) after the last one. This slows a
  guesser who spreads attempts over many addresses, yet it is a delay and not a lockout: a
  stranger cannot keep a named executive out for longer than the cap, and their right password
  works as soon as it passes. The wait is enforced by refusing early attempts, not by sleeping a
  worker, and an early attempt is not counted as a failure, so hammering does not lengthen it.
  Admission reserves the slot (the wait is set as if the attempt will fail), so parallel requests
  get one password check per slot, not one each.
- **Per address, for any account**: SIGN_IN_ADDRESS_LIMIT failures in SIGN_IN_ADDRESS_WINDOW,
  then no attempt from that address until the window ends (password spraying, floods).

A refused attempt is answered without checking the password, so it proves nothing either way.

A browser that has given an account's right password before carries a signed *known device*
cookie for it, and the account's delay does not apply to it (OWASP's device cookies). Without
this, a scripted stranger could take every slot the moment it opens and keep the owner waiting
indefinitely; with it, the owner's usual browser signs in at once while the stranger waits. The
cookie proves only that this browser once knew the password, which is all the delay guards; the
per-address limit and axes still apply to it. It is bound to the password it was given for: after
a change or a reset it no longer counts, so a browser that knew only the old password queues.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from typing import Any

import redis
from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponseBase

from apps.accounts.models import User
from apps.core.ratelimit import limit_key, redis_client, wait_text, window_hit, window_read

logger = logging.getLogger(__name__)

TOO_MANY_FOR_ACCOUNT = "Too many attempts for this account; try again in {seconds} seconds."
TOO_MANY_FROM_ADDRESS = "Too many failed sign-ins from your network; try again in {wait}."

ACCOUNT_SCOPE = "sign-in-account"
ADDRESS_SCOPE = "sign-in-address"

KNOWN_DEVICE_COOKIE = "known_device"
KNOWN_DEVICE_MAX_AGE = 90 * 24 * 60 * 60
_KNOWN_DEVICE_SALT = "apps.accounts.signin_throttle.known-device"


def account_delay(failures: int) -> int:
    """Seconds the next attempt must wait after `failures` consecutive failures."""
    free = int(settings.SIGN_IN_DELAY_AFTER)
    cap = int(settings.SIGN_IN_DELAY_CAP)
    if failures < free:
        return 0
    # 2**k grows past any cap quickly; bound k so a long-running count stays a small number.
    exponent: int = min(failures - free + 1, 62)
    return min(cap, 1 << exponent)


def account_key(email: str) -> str:
    return limit_key(ACCOUNT_SCOPE, email.strip().lower())


def _transaction(key: str, work: Any) -> Any:
    """Run `work(pipe)` under WATCH on `key`, again if another request changed the key meanwhile.

    The stubs type a pipeline's commands as queued, but under WATCH they return their values at
    once (which is what the check-then-set needs), so the pipeline is typed Any here.
    """
    client: Any = redis_client()
    return client.transaction(work, key, value_from_callable=True)


# The account's state, one Redis hash: "failures" (consecutive), "not_before" (when the next
# attempt may come, from the last failure) and "reserved_until" (the slot an admitted attempt
# holds while its password is checked; released if it turns out not to count).


def _account_admit(email: str) -> int:
    """Seconds still to wait for this account, or 0 with the attempt admitted."""
    key = account_key(email)
    memory = int(settings.SIGN_IN_DELAY_MEMORY)

    def admit(pipe: Any) -> int:
        failures, not_before, reserved = pipe.hmget(
            key, ["failures", "not_before", "reserved_until"]
        )
        now = time.time()
        wait_until = max(float(not_before or 0), float(reserved or 0))
        if now < wait_until:
            return math.ceil(wait_until - now)
        hold = account_delay(int(failures or 0) + 1)
        if hold:
            pipe.multi()
            pipe.hset(key, "reserved_until", repr(now + hold))
            pipe.expire(key, memory)
        return 0

    return int(_transaction(key, admit))


def _account_failed(email: str, *, counts: bool) -> None:
    key = account_key(email)
    memory = int(settings.SIGN_IN_DELAY_MEMORY)

    def fail(pipe: Any) -> None:
        failures = int(pipe.hget(key, "failures") or 0) + 1
        pipe.multi()
        if counts:
            not_before = time.time() + account_delay(failures)
            pipe.hset(key, mapping={"failures": str(failures), "not_before": repr(not_before)})
            pipe.expire(key, memory)
        pipe.hdel(key, "reserved_until")

    _transaction(key, fail)


def _account_ref(email: str) -> str:
    return account_key(email).rsplit(":", 1)[-1]


def _password_ref(user: User) -> str:
    """Changes with the user's password (Django's session auth hash, itself keyed with
    SECRET_KEY), hashed once more so the cookie does not carry the hash sessions are checked by."""
    return hashlib.sha256(user.get_session_auth_hash().encode()).hexdigest()[:32]


def known_device_mark(response: HttpResponseBase, *, email: str, user: User) -> None:
    """After the right password: this browser is a known device for the account, for as long
    as the password stays what it was (a change or a reset ends every such cookie)."""
    response.set_cookie(
        KNOWN_DEVICE_COOKIE,
        signing.dumps([_account_ref(email), _password_ref(user)], salt=_KNOWN_DEVICE_SALT),
        max_age=KNOWN_DEVICE_MAX_AGE,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def known_device(request: HttpRequest, *, email: str) -> bool:
    """The browser carries this account's known-device cookie, given under its current password.

    The account is loaded only when the cookie names it, so a sign-in without the cookie does
    the same work whether or not the address has an account."""
    raw = request.COOKIES.get(KNOWN_DEVICE_COOKIE, "")
    try:
        value = signing.loads(raw, salt=_KNOWN_DEVICE_SALT, max_age=KNOWN_DEVICE_MAX_AGE)
    except signing.BadSignature:
        return False
    if not isinstance(value, list) or len(value) != 2 or value[0] != _account_ref(email):
        return False
    user = User.objects.filter(email=email, is_active=True).first()
    return user is not None and hmac.compare_digest(str(value[1]), _password_ref(user))


def sign_in_admit(*, email: str, ip: str | None, known: bool = False) -> str | None:
    """Admit one password check for `email` from `ip`; or the message that refuses it.

    `known`: the browser is a known device for the account (no account delay for it)."""
    if ip is not None:
        window = window_read(scope=ADDRESS_SCOPE, source=ip)
        if window.count >= int(settings.SIGN_IN_ADDRESS_LIMIT):
            return TOO_MANY_FROM_ADDRESS.format(wait=wait_text(window.seconds_left))
    if known:
        return None
    try:
        seconds = _account_admit(email)
    except redis.RedisError:
        # Fail open: axes' lockout (in the database) still holds; a Redis outage must not stop
        # every sign-in.
        logger.exception("sign-in delay not checked: Redis is unavailable")
        return None
    return TOO_MANY_FOR_ACCOUNT.format(seconds=seconds) if seconds else None


def sign_in_failed(*, email: str, ip: str | None, count_for_account: bool) -> None:
    """Count a wrong password (or an attempt axes refused) against the address, and against the
    account when `count_for_account`."""
    if ip is not None:
        window_hit(scope=ADDRESS_SCOPE, source=ip, window=int(settings.SIGN_IN_ADDRESS_WINDOW))
    try:
        _account_failed(email, counts=count_for_account)
    except redis.RedisError:
        logger.exception("sign-in failure not counted: Redis is unavailable")


def account_delay_clear(*, email: str) -> None:
    """The right password (or an operator's reset): the account's delay starts from nothing."""
    try:
        redis_client().delete(account_key(email))
    except redis.RedisError:
        logger.exception("sign-in delay not cleared: Redis is unavailable")
