"""Step-up ("sudo mode"): sensitive actions need a recent second-factor confirmation.

A session is *fresh* when its last TOTP (or recovery-code) confirmation, at sign-in or on the
step-up page, is at most ``settings.STEP_UP_MAX_AGE`` seconds old. Stale sessions are sent to
``accounts:step-up``, which asks for a new code and then returns to ``next``.

Use the decorator on an org view, *inside* ``org_view`` so that sign-in, membership and role are
checked first (outsiders get their 404, not a step-up page)::

    from apps.accounts.stepup import step_up_required

    @require_http_methods(["GET", "POST"])
    @org_view(Capability.MANAGE_KEYS)
    @step_up_required
    def credential_create(request: HttpRequest, membership: Membership) -> HttpResponse:
        ...

- GET requests come back to the same URL after the step-up.
- Other methods (a POST whose form was opened before the confirmation expired) cannot be
  replayed; the user returns to the page they submitted from (htmx ``HX-Current-URL`` or a
  same-site ``Referer``) and submits again, now fresh.
- htmx requests get ``HX-Redirect`` (status 200), so the whole page moves to the step-up form
  instead of swapping it into a fragment.

Services and views that decide for themselves (for instance a form that only needs a step-up
for large amounts) call ``step_up_is_fresh(request)`` and ``step_up_redirect(request)``.

Keeping what was typed: ``step_up_redirect(request, purpose=..., keep_form=FormClass)`` (or the
decorator ``step_up_for(purpose=..., keep_form=FormClass)``) parks a POST's fields in the
session, sends the user through the step-up (or 2FA enrolment, for someone without it; both
pages say why, from ``step_up_pending``) and back to the form's URL, where the view binds the
form to ``kept_form_take(request)`` and calls ``kept_form_mark(form, kept)``. Fields that may
hold a secret (the view's ``sensitive_post_parameters``, password inputs, secret-sounding names)
are never kept: the pages list them and the form asks for them again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.forms import BaseForm, Form, PasswordInput
from django.http import HttpRequest, HttpResponseBase, HttpResponseRedirect, QueryDict
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect

from apps.accounts.services import STEP_UP_SESSION_KEY

__all__ = [
    "STEP_UP_SESSION_KEY",
    "KeptForm",
    "kept_form_mark",
    "kept_form_take",
    "step_up_age",
    "step_up_for",
    "step_up_is_fresh",
    "step_up_pending",
    "step_up_redirect",
    "step_up_required",
]

# Session key: what the user was doing when sent to the step-up or to enrolment.
PENDING_SESSION_KEY = "step_up_pending"
PENDING_MAX_AGE = 30 * 60  # seconds: longer than any enrolment, shorter than a working day
# A field whose name has one of these may hold a secret: never parked in the session.
SECRET_NAME_WORDS = ("secret", "password", "otp", "token", "passphrase", "private", "code")
FIELD_NOT_KEPT = "Not kept while you confirmed your identity, for your safety: enter it again."
FORM_KEPT = "What you typed is back: check it and send the form again."


@dataclass(frozen=True)
class KeptForm:
    """A form's fields parked across the step-up (no secrets), and what the user was doing."""

    path: str
    purpose: str
    data: dict[str, list[str]] | None  # None: nothing was typed (a GET was sent to step up)
    dropped: list[str]  # field names not kept
    dropped_labels: list[str]  # the same, as the form labels them
    at: float

    def query(self) -> QueryDict:
        data = QueryDict(mutable=True)
        for key, values in (self.data or {}).items():
            data.setlist(key, values)
        return data


def _may_hold_secret(request: HttpRequest, name: str, form_class: type[Form] | None) -> bool:
    sensitive: Any = getattr(request, "sensitive_post_parameters", None) or ()
    if sensitive == "__ALL__" or name in sensitive:
        return True
    field = form_class.base_fields.get(name) if form_class is not None else None
    if field is not None and isinstance(field.widget, PasswordInput):
        return True
    return any(word in name.lower() for word in SECRET_NAME_WORDS)


def _remember(
    request: HttpRequest, *, purpose: str, form_class: type[Form] | None, path: str
) -> None:
    data: dict[str, list[str]] | None = None
    dropped: list[str] = []
    if form_class is not None and request.method == "POST":
        data = {}
        for name in request.POST:
            if name == "csrfmiddlewaretoken":
                continue
            if _may_hold_secret(request, name, form_class):
                if any(request.POST.getlist(name)):
                    dropped.append(name)
                continue
            if name in form_class.base_fields:
                data[name] = request.POST.getlist(name)
    labels = []
    for name in dropped:
        field = form_class.base_fields.get(name) if form_class is not None else None
        labels.append(str(field.label) if field is not None and field.label else name)
    request.session[PENDING_SESSION_KEY] = {
        "path": path,
        "purpose": purpose,
        "data": data,
        "dropped": dropped,
        "dropped_labels": labels,
        "at": time.time(),
    }


def step_up_pending(request: HttpRequest) -> KeptForm | None:
    """What the user was doing when sent here (the step-up and enrolment pages say it)."""
    raw: Any = request.session.get(PENDING_SESSION_KEY)
    if not isinstance(raw, dict):
        return None
    try:
        kept = KeptForm(
            path=str(raw["path"]),
            purpose=str(raw["purpose"]),
            data=raw["data"],
            dropped=list(raw["dropped"]),
            dropped_labels=list(raw["dropped_labels"]),
            at=float(raw["at"]),
        )
    except (KeyError, TypeError, ValueError):
        request.session.pop(PENDING_SESSION_KEY, None)
        return None
    if not 0 <= time.time() - kept.at <= PENDING_MAX_AGE:
        request.session.pop(PENDING_SESSION_KEY, None)
        return None
    return kept


def kept_form_take(request: HttpRequest) -> KeptForm | None:
    """The fields kept for the form at this URL, once (a reload shows the form empty)."""
    if request.method != "GET":
        return None
    kept = step_up_pending(request)
    if kept is None or kept.path != request.path:
        return None
    request.session.pop(PENDING_SESSION_KEY, None)
    return kept if kept.data is not None else None


def kept_form_mark(form: BaseForm, kept: KeptForm) -> None:
    """Say on each field that was not kept that it must be entered again, instead of the
    bare "This field is required."."""
    form.full_clean()
    for name in kept.dropped:
        if name in form.fields:
            form.errors[name] = form.error_class([FIELD_NOT_KEPT])


def step_up_age(request: HttpRequest) -> float | None:
    """Seconds since this session last confirmed the second factor, or None if never."""
    value: Any = request.session.get(STEP_UP_SESSION_KEY)
    try:
        confirmed_at = float(value)
    except (TypeError, ValueError):
        return None
    return time.time() - confirmed_at


def step_up_is_fresh(request: HttpRequest) -> bool:
    """True if the signed-in, 2FA-verified session confirmed a code within STEP_UP_MAX_AGE."""
    user: Any = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    is_verified = getattr(user, "is_verified", None)
    if is_verified is None or not is_verified():
        return False
    age = step_up_age(request)
    return age is not None and 0 <= age <= settings.STEP_UP_MAX_AGE


def _safe_path(request: HttpRequest, url: str | None) -> str | None:
    if not url:
        return None
    if not url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return None
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _return_path(request: HttpRequest) -> str:
    """Where the user should land after confirming: this page, or the page they came from."""
    if request.method in ("GET", "HEAD") and not getattr(request, "htmx", False):
        return request.get_full_path()
    htmx = getattr(request, "htmx", None)
    candidates = [
        getattr(htmx, "current_url", None) if htmx else None,
        request.headers.get("Referer"),
    ]
    for candidate in candidates:
        if (path := _safe_path(request, candidate)) is not None:
            return path
    if request.method in ("GET", "HEAD"):
        return request.get_full_path()
    return reverse("core:home")


def step_up_redirect(
    request: HttpRequest, *, purpose: str = "", keep_form: type[Form] | None = None
) -> HttpResponseBase:
    """Send the user to the step-up page, coming back to where they were.

    With `purpose` ("Adding an API key"), the step-up and enrolment pages say why they are
    asked. With `keep_form` (the form's class, for its fields and labels), a POST's fields are
    kept (secrets left out) and the user comes back to this URL, the form's own, to find them.
    """
    return_path = _return_path(request)
    if keep_form is not None and request.method == "POST":
        return_path = request.get_full_path()
    if purpose or keep_form is not None:
        _remember(request, purpose=purpose, form_class=keep_form, path=urlsplit(return_path).path)
    else:
        request.session.pop(PENDING_SESSION_KEY, None)  # an older purpose would mislead
    url = reverse("accounts:step-up") + "?" + urlencode({"next": return_path})
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url)


def step_up_required[V: Callable[..., HttpResponseBase]](view: V) -> V:
    """Let the view run only in a fresh session (see the module docstring)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not step_up_is_fresh(request):
            return step_up_redirect(request)
        return view(request, *args, **kwargs)

    wrapper.step_up = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def step_up_for[V: Callable[..., HttpResponseBase]](
    *, purpose: str, keep_form: type[Form] | None = None
) -> Callable[[V], V]:
    """`step_up_required` that says why (`purpose`) and keeps a POST's fields (`keep_form`)."""

    def decorator(view: V) -> V:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not step_up_is_fresh(request):
                return step_up_redirect(request, purpose=purpose, keep_form=keep_form)
            return view(request, *args, **kwargs)

        wrapper.step_up = True  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator
