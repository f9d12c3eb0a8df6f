"""Sign-in (password, then the second factor), enrolment, recovery codes, step-up, profile.

A password alone never yields a session: for users with an authenticator app the password step
only parks their id in the (anonymous) session as a *pending* sign-in, and `two_factor_verify`
signs them in after a correct code. Pending sign-ins expire after a few minutes or a few wrong
codes, and wrong passwords are counted by django-axes (lockout with cool-off).
"""

from __future__ import annotations

import base64
import time
from typing import Any, cast
from urllib.parse import urlencode

import django_otp
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, update_session_auth_hash
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST
from django_otp.models import Device

from apps.accounts import services, signin_throttle
from apps.accounts.forms import CodeForm, ProfileForm, SignInForm, time_zone_choices
from apps.accounts.middleware import IDLE_SIGNED_OUT_KEY
from apps.accounts.models import EncryptedTOTPDevice, RecoveryCodeDevice, User
from apps.accounts.selectors import (
    orgs_requiring_two_factor,
    recovery_codes_remaining,
    totp_device_confirmed,
    two_factor_enabled,
)
from apps.accounts.stepup import (
    step_up_age,
    step_up_is_fresh,
    step_up_pending,
    step_up_redirect,
    step_up_required,
)
from apps.core.access import login_view, public_view
from apps.core.clientip import client_ip
from apps.core.crypto import CryptoError

SIGN_IN_INVALID = "Email or password is incorrect."
SIGNED_OUT = "You are signed out."
SIGNED_OUT_IDLE = "You were signed out after a period of inactivity. Sign in again to continue."
PENDING_EXPIRED = "Your sign-in took too long or had too many wrong codes. Sign in again."
TWO_FACTOR_ENABLED = "Two-factor authentication is on. Keep your recovery codes somewhere safe."
TWO_FACTOR_DISABLED = "Two-factor authentication is off for your account."
STEP_UP_CONFIRMED = "Confirmed. You can continue for the next {minutes} minutes."
PROFILE_SAVED = "Your profile is saved."
TWO_FACTOR_UNAVAILABLE = (
    "Two-factor authentication cannot be set up right now: the portal's keyring is not "
    "configured. Tell your administrator."
)
RECOVERY_CODE_USED = (
    "You signed in with a recovery code; {left} left. Generate new ones on your profile page."
)

BACKEND = "apps.accounts.backends.EmailBackend"

# The pending (password-checked, not yet second-factor-checked) sign-in, in the session.
PENDING_USER_KEY = "pending_sign_in_user"
PENDING_AT_KEY = "pending_sign_in_at"
PENDING_FAILURES_KEY = "pending_sign_in_failures"
PENDING_MAX_AGE = 5 * 60
PENDING_MAX_FAILURES = 5
THEME_RESET_KEY = "theme_reset"


def _user(request: HttpRequest) -> User:
    return cast(User, request.user)


def _next_url(request: HttpRequest, default: str = "core:home") -> str:
    """A same-site `next` from the form or query string, or the default page."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate.startswith("/") and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse(default)


def _with_next(url_name: str, next_url: str) -> str:
    return reverse(url_name) + "?" + urlencode({"next": next_url})


def _needs_verification(request: HttpRequest) -> HttpResponseBase | None:
    """Accounts pages are for verified sessions once the user has an authenticator."""
    user: Any = request.user
    if user.is_verified() or not two_factor_enabled(user=user):
        return None
    return redirect(_with_next("accounts:two-factor-verify", request.get_full_path()))


# Sign-in, step one: email and password.


def _pending_clear(request: HttpRequest) -> None:
    for key in (PENDING_USER_KEY, PENDING_AT_KEY, PENDING_FAILURES_KEY):
        request.session.pop(key, None)


def _pending_user(request: HttpRequest) -> User | None:
    user_id = request.session.get(PENDING_USER_KEY)
    started = request.session.get(PENDING_AT_KEY)
    if user_id is None or not isinstance(started, int | float):
        return None
    if time.time() - started > PENDING_MAX_AGE:
        _pending_clear(request)
        return None
    return User.objects.filter(pk=user_id, is_active=True).first()


@sensitive_variables("form")
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
@public_view
def login(request: HttpRequest) -> HttpResponse:
    next_url = _next_url(request)
    if request.user.is_authenticated and request.method == "GET":
        return HttpResponseRedirect(next_url)
    notice = SIGNED_OUT_IDLE if request.session.pop(IDLE_SIGNED_OUT_KEY, False) else None
    form = SignInForm(request.POST if request.method == "POST" else None)
    status = 200
    if form.is_valid():
        email = form.cleaned_data["email"]
        ip = client_ip(request)
        password = form.cleaned_data["password"]
        browser_known = signin_throttle.known_device(request, email=email)
        refusal = signin_throttle.sign_in_admit(email=email, ip=ip, known=browser_known)
        if refusal is not None:
            # Refused before the password is checked (signin_throttle says why).
            form.add_error(None, refusal)
            status = 429
        elif (authenticated := authenticate(request, username=email, password=password)) is None:
            known = User.objects.filter(email=email).first()
            locked_out = bool(getattr(request, "axes_locked_out", False))
            # An attempt that axes locked out, or the failure that set off the lockout, is not
            # held against the account everywhere: axes already stops this address.
            signin_throttle.sign_in_failed(email=email, ip=ip, count_for_account=not locked_out)
            services.sign_in_failure_record(
                email=email, user=known, locked_out=locked_out, request=request
            )
            form.add_error(None, SIGN_IN_INVALID)
        else:
            user = authenticated
            signin_throttle.account_delay_clear(email=email)
            _pending_clear(request)
            if two_factor_enabled(user=user):
                # A new session key before anything is tied to this person.
                request.session.cycle_key()
                request.session[PENDING_USER_KEY] = user.pk
                request.session[PENDING_AT_KEY] = time.time()
                request.session[PENDING_FAILURES_KEY] = 0
                response: HttpResponse = redirect(
                    _with_next("accounts:two-factor-verify", next_url)
                )
            else:
                auth_login(request, user, backend=BACKEND)
                services.sign_in_record(user=user, device=None, request=request)
                response = HttpResponseRedirect(next_url)
            signin_throttle.known_device_mark(response, email=email, user=user)
            return response
    return render(
        request,
        "accounts/login.html",
        {"form": form, "next": next_url, "notice": notice},
        status=status,
    )


@require_POST
@public_view
def logout(request: HttpRequest) -> HttpResponse:
    was_signed_in = request.user.is_authenticated
    auth_logout(request)
    if was_signed_in:
        messages.info(request, SIGNED_OUT)
    return redirect("accounts:login")


# Sign-in, step two: the code.


def _code_check(request: HttpRequest, user: User, form: CodeForm, *, purpose: str) -> Device | None:
    """The device that accepts the form's code; or None, with the failure recorded and shown."""
    try:
        return services.two_factor_check(user=user, code=form.cleaned_data["code"], request=request)
    except ValidationError as error:
        services.two_factor_failure_record(user=user, request=request, purpose=purpose)
        form.add_error("code", error)
        return None


@sensitive_variables("form")
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
@public_view
def two_factor_verify(request: HttpRequest) -> HttpResponse:
    """The second factor, for a pending sign-in or for a signed-in but unverified session."""
    next_url = _next_url(request)
    pending = _pending_user(request)
    if pending is not None:
        user = pending
    elif request.user.is_authenticated:
        user = _user(request)
        if cast(Any, user).is_verified():
            return HttpResponseRedirect(next_url)
    else:
        if PENDING_USER_KEY in request.session:
            _pending_clear(request)
            messages.warning(request, PENDING_EXPIRED)
        return redirect(_with_next("accounts:login", next_url))
    if not two_factor_enabled(user=user):
        if pending is not None:
            # The authenticator was removed meanwhile: start again with the password.
            _pending_clear(request)
            return redirect(_with_next("accounts:login", next_url))
        return redirect(_with_next("accounts:two-factor-setup", next_url))

    form = CodeForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        device = _code_check(request, user, form, purpose="sign_in")
        if device is None:
            if pending is not None:
                failures = int(request.session.get(PENDING_FAILURES_KEY, 0)) + 1
                request.session[PENDING_FAILURES_KEY] = failures
                if failures >= PENDING_MAX_FAILURES:
                    _pending_clear(request)
                    messages.error(request, PENDING_EXPIRED)
                    return redirect(_with_next("accounts:login", next_url))
        else:
            if pending is not None:
                _pending_clear(request)
                auth_login(request, user, backend=BACKEND)
            django_otp.login(request, device)
            services.step_up_mark(request=request)
            services.sign_in_record(user=user, device=device, request=request)
            if isinstance(device, RecoveryCodeDevice):
                left = recovery_codes_remaining(user=user)
                messages.warning(request, RECOVERY_CODE_USED.format(left=left))
            return HttpResponseRedirect(next_url)
    return render(
        request,
        "accounts/two_factor_verify.html",
        {"form": form, "next": next_url, "pending_email": user.email},
    )


# Enrolment and recovery codes.


@sensitive_variables()
def _qr_data_uri(device: EncryptedTOTPDevice) -> str:
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(
        device.config_url, image_factory=qrcode.image.svg.SvgPathFillImage, box_size=10, border=2
    )
    svg: bytes = image.to_string()
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode()


@sensitive_variables()
def _manual_key(device: EncryptedTOTPDevice) -> str:
    secret = base64.b32encode(device.bin_key).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


# The page shows the authenticator's secret (and, once, the recovery codes): no cache may
# keep it (never_cache sends Cache-Control: no-store).
@sensitive_variables("form", "device", "codes")
@sensitive_post_parameters("code")
@never_cache
@require_http_methods(["GET", "POST"])
@login_view
def two_factor_setup(request: HttpRequest) -> HttpResponseBase:
    user = _user(request)
    next_url = _next_url(request)
    if (response := _needs_verification(request)) is not None:
        return response
    if two_factor_enabled(user=user):
        if request.method == "POST":
            return redirect("accounts:two-factor-setup")
        return render(
            request,
            "accounts/two_factor_manage.html",
            {
                "codes_left": recovery_codes_remaining(user=user),
                "device": totp_device_confirmed(user=user),
                "required_by": orgs_requiring_two_factor(user=user),
            },
        )
    if request.session.session_key is None:
        request.session.save()  # The pending device belongs to this session: it needs a key.
    try:
        device = services.totp_device_get_or_create_pending(
            user=user, session_key=request.session.session_key or ""
        )
    except CryptoError:
        return render(
            request,
            "accounts/two_factor_unavailable.html",
            {"message": TWO_FACTOR_UNAVAILABLE},
            status=503,
        )
    form = CodeForm(request.POST if request.method == "POST" else None, allow_recovery=False)
    if form.is_valid():
        try:
            codes = services.two_factor_enrol(
                user=user, device=device, code=form.cleaned_data["code"], request=request
            )
        except ValidationError as error:
            form.add_error("code", error)
        else:
            django_otp.login(request, device)
            services.step_up_mark(request=request)
            messages.success(request, TWO_FACTOR_ENABLED)
            return render(
                request,
                "accounts/recovery_codes.html",
                {"codes": codes, "next": next_url, "just_enrolled": True},
            )
    return render(
        request,
        "accounts/two_factor_setup.html",
        {
            "form": form,
            "next": next_url,
            "qr": _qr_data_uri(device),
            "manual_key": _manual_key(device),
            "required_by": orgs_requiring_two_factor(user=user),
            "pending": step_up_pending(request),
        },
    )


@sensitive_variables("codes")
@never_cache
@require_http_methods(["GET", "POST"])
@login_view
def recovery_codes(request: HttpRequest) -> HttpResponseBase:
    """GET: how many codes are left. POST: ten new codes (needs a fresh step-up)."""
    user = _user(request)
    if (response := _needs_verification(request)) is not None:
        return response
    if not two_factor_enabled(user=user):
        return redirect("accounts:two-factor-setup")
    if request.method == "POST":
        if not step_up_is_fresh(request):
            return step_up_redirect(request)
        codes = services.recovery_codes_regenerate(user=user, request=request)
        return render(
            request,
            "accounts/recovery_codes.html",
            {"codes": codes, "next": reverse("accounts:profile"), "just_enrolled": False},
        )
    return render(
        request,
        "accounts/recovery_codes.html",
        {"codes": None, "codes_left": recovery_codes_remaining(user=user)},
    )


@require_POST
@login_view
@step_up_required
def two_factor_disable(request: HttpRequest) -> HttpResponseBase:
    user = _user(request)
    services.two_factor_disable(user=user, request=request)
    request.session.pop(services.STEP_UP_SESSION_KEY, None)
    request.session.pop(django_otp.DEVICE_ID_SESSION_KEY, None)
    messages.warning(request, TWO_FACTOR_DISABLED)
    return redirect("accounts:two-factor-setup")


# Step-up.


@sensitive_variables("form")
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
@login_view
def step_up(request: HttpRequest) -> HttpResponseBase:
    user = _user(request)
    next_url = _next_url(request)
    if not two_factor_enabled(user=user):
        return redirect(_with_next("accounts:two-factor-setup", next_url))
    form = CodeForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        device = _code_check(request, user, form, purpose="step_up")
        if device is not None:
            django_otp.login(request, device)
            services.step_up_confirm(user=user, device=device, request=request)
            minutes = max(1, settings.STEP_UP_MAX_AGE // 60)
            messages.success(request, STEP_UP_CONFIRMED.format(minutes=minutes))
            return HttpResponseRedirect(next_url)
    return render(
        request,
        "accounts/step_up.html",
        {
            "form": form,
            "next": next_url,
            "age": step_up_age(request),
            "pending": step_up_pending(request),
        },
    )


# Profile.


@require_http_methods(["GET", "POST"])
@login_view
def profile(request: HttpRequest) -> HttpResponseBase:
    user = _user(request)
    if (response := _needs_verification(request)) is not None:
        return response
    if request.method == "POST":
        form = ProfileForm(request.POST)
        if form.is_valid():
            try:
                services.user_profile_update(
                    user=user,
                    time_zone=form.cleaned_data["time_zone"],
                    theme=form.cleaned_data["theme"],
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                request.session[THEME_RESET_KEY] = True
                messages.success(request, PROFILE_SAVED)
                return redirect("accounts:profile")
    else:
        form = ProfileForm(initial={"time_zone": user.time_zone, "theme": user.theme})
    return render(
        request,
        "accounts/profile.html",
        {
            "form": form,
            "two_factor": two_factor_enabled(user=user),
            "codes_left": recovery_codes_remaining(user=user),
            "required_by": orgs_requiring_two_factor(user=user),
            "theme_reset": request.session.pop(THEME_RESET_KEY, False),
            "time_zones": time_zone_choices(),
        },
    )


# Password change (needs a fresh step-up), reset by email, and other sessions.

SIGN_IN_CHANGED = "Your password is changed. Your other sessions were signed out."
RESET_LIMITED = "Too many password reset requests from here or for this address. Try again later."
OTHER_SESSIONS_SIGNED_OUT = "Signed out of {count} other session{plural}."


class _PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:profile")

    def form_valid(self, form: Any) -> HttpResponse:
        user = _user(self.request)
        services.password_change(
            user=user, new_password=form.cleaned_data["new_password1"], request=self.request
        )
        # This session stays signed in (its auth hash follows the new password).
        update_session_auth_hash(self.request, user)
        messages.success(self.request, SIGN_IN_CHANGED)
        return HttpResponseRedirect(str(self.success_url))


# Django's views bring sensitive_post_parameters, never_cache and csrf_protect. The outer
# sensitive_variables() hides every local of every frame below it (form_valid, the form's
# methods) from error reports: with passwords in play, there is nothing worth showing.
password_change = sensitive_variables()(login_view(step_up_required(_PasswordChangeView.as_view())))


class _PasswordResetView(auth_views.PasswordResetView):
    """Django's request step, with two changes: the email is sent by a Celery task that also
    runs for unknown addresses (same answer, same work), and requests are rate limited per
    client address and per email address."""

    template_name = "accounts/password_reset_form.html"
    success_url = reverse_lazy("accounts:password-reset-done")

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        email = str(request.POST.get("email", ""))[:254]
        if not services.password_reset_allowed(ip=client_ip(request), email=email):
            form = self.get_form()
            form.is_valid()
            form.add_error(None, RESET_LIMITED)
            return self.render_to_response(self.get_context_data(form=form), status=429)
        response: HttpResponse = super().post(request, *args, **kwargs)
        return response

    def form_valid(self, form: Any) -> HttpResponse:
        services.password_reset_request(email=form.cleaned_data["email"])
        return HttpResponseRedirect(str(self.success_url))


class _PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password-reset-complete")

    def form_valid(self, form: Any) -> HttpResponse:
        response: HttpResponse = super().form_valid(form)  # sets the password
        services.password_reset_completed(user=form.user, request=self.request)
        return response


password_reset = public_view(_PasswordResetView.as_view())
password_reset_done = public_view(
    auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html")
)
password_reset_confirm = sensitive_variables()(public_view(_PasswordResetConfirmView.as_view()))
password_reset_complete = public_view(
    auth_views.PasswordResetCompleteView.as_view(
        template_name="accounts/password_reset_complete.html"
    )
)


@require_POST
@login_view
def sessions_sign_out_others(request: HttpRequest) -> HttpResponseBase:
    """End every other session of this user (and their sockets); this one stays."""
    if (response := _needs_verification(request)) is not None:
        return response
    count = services.sessions_end_others(user=_user(request), request=request)
    messages.success(
        request, OTHER_SESSIONS_SIGNED_OUT.format(count=count, plural="" if count == 1 else "s")
    )
    return redirect("accounts:profile")
