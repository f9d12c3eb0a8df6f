from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms import Form
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import User
from apps.accounts.stepup import (
    FORM_KEPT,
    kept_form_mark,
    kept_form_take,
    step_up_is_fresh,
    step_up_redirect,
)
from apps.core.access import public_view, staff_view
from apps.core.clientip import client_ip
from apps.core.emails import email_normalize
from apps.core.ratelimit import window_hit
from apps.orgs.access import org_view
from apps.orgs.dashboard import dashboard_attention, dashboard_panels
from apps.orgs.forms import (
    AcceptAsNewUserForm,
    InvitationForm,
    KrakenAccountForm,
    MemberRoleForm,
    OnboardingForm,
    OnboardingRejectForm,
    OrganizationSettingsForm,
    role_choices,
)
from apps.orgs.hooks import removal_warnings
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Capability, Role, permission_matrix
from apps.orgs.selectors import (
    InvitationState,
    invitation_by_token,
    invitation_get_in_org,
    invitation_state,
    invitations_pending,
    kraken_account_get,
    kraken_accounts,
    member_get_in_org,
    onboarding_get,
    onboarding_pending,
    onboarding_recently_reviewed,
    org_members,
)
from apps.orgs.services import accounts, invitations, memberships, onboarding, organizations
from apps.orgs.services.organizations import user_current_org_set

ROLE_CHANGED = "{email} is now {role}."
MEMBER_REMOVED = "{email} was removed from the organization."
INVITATION_SENT = "Invitation sent to {email}."
INVITATION_RESENT = "A new invitation link was sent to {email}; the previous link no longer works."
INVITATION_REVOKED = "The invitation to {email} was revoked."
SETTINGS_SAVED = "Settings saved."
SETTINGS_STEP_UP = "Saving the organization's settings"
ACCOUNT_ADDED = "Kraken account “{label}” added."
ACCOUNT_SAVED = "Kraken account “{label}” saved."
ACCOUNT_ARCHIVED = "Kraken account “{label}” archived."
WELCOME = "Welcome to {org}."
APPLICATION_RECEIVED = "Thank you: we received your application and will be in touch by email."
APPLICATION_APPROVED = "{company} was approved; {email} has been invited as owner."
APPLICATION_REJECTED = "{company} was rejected."
APPLICATIONS_TOO_MANY = "Too many applications from your network; try again in {wait}."


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


def _add_service_errors(form: Form, error: ValidationError) -> None:
    """Show a service's refusal next to the field it names, or above the form."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


@require_GET
@org_view(Capability.VIEW)
def dashboard(request: HttpRequest, membership: Membership) -> HttpResponse:
    user_current_org_set(user=membership.user, org=membership.org)
    org = membership.org
    # The other organizations come from `switch_orgs` (kraken_portal.context_processors.portal).
    context: dict[str, Any] = {
        "org": org,
        "members_count": org_members(org=org).count(),
        "can_manage_members": membership.can(Capability.MANAGE_MEMBERS),
        "can_manage_policies": membership.can(Capability.MANAGE_POLICIES),
        "capabilities": [label for cap, label, _ in permission_matrix() if membership.can(cap)],
    }
    if context["can_manage_members"]:
        context["pending_invitations"] = list(invitations_pending(org=org))
    context["attention"] = dashboard_attention(request, membership)
    context["panels"] = dashboard_panels(request, membership)
    return render(request, "orgs/dashboard.html", context)


def _member_row_context(membership: Membership) -> dict[str, Any]:
    """What one row of the members table needs (the htmx role change renders only that row)."""
    return {
        "org": membership.org,
        "role_choices": role_choices(actor_role=membership.role),
        "is_owner": membership.role == Role.OWNER,
    }


def _members_context(membership: Membership) -> dict[str, Any]:
    org = membership.org
    members = list(org_members(org=org))
    # What removing each member would break (a policy of a higher layer, through the hook).
    warnings = removal_warnings(org)
    for member in members:
        member.removal_warnings = warnings.get(member.pk, [])  # type: ignore[attr-defined]
    return {
        **_member_row_context(membership),
        "members": members,
        "invitations": list(invitations_pending(org=org)),
        "invitation_form": InvitationForm(actor_role=membership.role),
        "now": timezone.now(),
    }


@require_GET
@org_view(Capability.MANAGE_MEMBERS)
def member_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    return render(request, "orgs/members.html", _members_context(membership))


@require_POST
@org_view(Capability.MANAGE_MEMBERS)
def member_role(request: HttpRequest, membership: Membership, pk: int) -> HttpResponseBase:
    target = member_get_in_org(org=membership.org, pk=pk)
    form = MemberRoleForm(request.POST)
    touches_owner = Role.OWNER in (target.role, form.data.get("role"))
    if touches_owner and not step_up_is_fresh(request):
        # Making or unmaking an owner hands over the whole organization: confirm 2FA first.
        return step_up_redirect(request)
    error = ""
    held: str | None = None
    if not form.is_valid():
        error = " ".join(str(e) for e in form.errors.get("role", ["Choose a role."]))
    else:
        try:
            grant = memberships.membership_grant_role(
                membership=target, role=form.cleaned_data["role"], actor=membership, request=request
            )
        except ValidationError as exc:
            error = _error_text(exc)
        else:
            target, held = grant.membership, grant.held
    if getattr(request, "htmx", False):
        # The row swaps in place; its message shows inside the row (read as the table reads
        # it, with its 2FA status).
        row = org_members(org=membership.org).filter(pk=target.pk).first()
        context = _member_row_context(membership)
        if row is None:
            # Removed while this change waited (the service said MEMBER_GONE): no row is
            # left to show, only why.
            context.update(pk=target.pk, row_error=error or memberships.MEMBER_GONE)
            return render(request, "orgs/members.html#member-gone", context)
        target = row
        context.update(
            m=target,
            row_error=error,
            row_notice=""
            if error
            else held
            or ROLE_CHANGED.format(email=target.user.email, role=target.get_role_display()),
        )
        return render(request, "orgs/members.html#member-row", context)
    if error:
        messages.error(request, error)
    elif held:
        messages.info(request, held)
    else:
        messages.success(
            request, ROLE_CHANGED.format(email=target.user.email, role=target.get_role_display())
        )
    return redirect("orgs:member-list", org=membership.org.slug)


@require_POST
@org_view(Capability.MANAGE_MEMBERS)
def member_remove(request: HttpRequest, membership: Membership, pk: int) -> HttpResponseBase:
    target = member_get_in_org(org=membership.org, pk=pk)
    removes_another_owner = target.role == Role.OWNER and target.pk != membership.pk
    if removes_another_owner and membership.role == Role.OWNER and not step_up_is_fresh(request):
        # Removing another owner is unmaking one: the same fresh 2FA confirmation as a
        # demotion. (Non-owners are refused by the service; stepping down needs no step-up.)
        return step_up_redirect(request)
    email = target.user.email
    try:
        memberships.membership_remove(membership=target, actor=membership, request=request)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, MEMBER_REMOVED.format(email=email))
        if target.user_id == request.user.pk:
            return redirect("core:home")
    return redirect("orgs:member-list", org=membership.org.slug)


@require_http_methods(["GET", "POST"])
@org_view(Capability.MANAGE_MEMBERS)
def invitation_create(request: HttpRequest, membership: Membership) -> HttpResponseBase:
    form = InvitationForm(request.POST or None, actor_role=membership.role)
    if request.method == "POST" and form.is_valid():
        if form.cleaned_data["role"] == Role.OWNER and not step_up_is_fresh(request):
            # Inviting an owner hands over the whole organization, like making one.
            return step_up_redirect(request)
        try:
            grant = invitations.invitation_grant(
                org=membership.org,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                actor=membership,
                request=request,
            )
        except ValidationError as exc:
            _add_service_errors(form, exc)
        else:
            if grant.held:
                messages.info(request, grant.held)
            else:
                messages.success(request, INVITATION_SENT.format(email=form.cleaned_data["email"]))
            return redirect("orgs:member-list", org=membership.org.slug)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "orgs/invitation_form.html", {"org": membership.org, "form": form}, status=status
    )


def _invitation_act(
    request: HttpRequest,
    membership: Membership,
    pk: int,
    service: Callable[..., object],
    done: str,
) -> HttpResponse:
    """Run an invitation service from the members page and come back to it with its outcome."""
    invitation = invitation_get_in_org(org=membership.org, pk=pk)
    try:
        service(invitation=invitation, actor=membership, request=request)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, done.format(email=invitation.email))
    return redirect("orgs:member-list", org=membership.org.slug)


@require_POST
@org_view(Capability.MANAGE_MEMBERS)
def invitation_revoke(request: HttpRequest, membership: Membership, pk: int) -> HttpResponse:
    return _invitation_act(
        request, membership, pk, invitations.invitation_revoke, INVITATION_REVOKED
    )


@require_POST
@org_view(Capability.MANAGE_MEMBERS)
def invitation_resend(request: HttpRequest, membership: Membership, pk: int) -> HttpResponse:
    return _invitation_act(
        request, membership, pk, invitations.invitation_resend, INVITATION_RESENT
    )


@require_GET
@org_view(Capability.MANAGE_MEMBERS)
def permission_table(request: HttpRequest, membership: Membership) -> HttpResponse:
    return render(
        request,
        "orgs/permission_table.html",
        {"org": membership.org, "roles": Role.choices, "rows": permission_matrix()},
    )


@require_http_methods(["GET", "POST"])
@org_view(Capability.MANAGE_POLICIES)
def settings_view(request: HttpRequest, membership: Membership) -> HttpResponseBase:
    if request.method == "POST" and not step_up_is_fresh(request):
        # Policies (2FA for everyone) are sensitive: a fresh second-factor confirmation first,
        # keeping what was typed for when the user comes back.
        return step_up_redirect(
            request, purpose=SETTINGS_STEP_UP, keep_form=OrganizationSettingsForm
        )
    org = membership.org
    initial = {
        "name": org.name,
        "require_2fa": org.require_2fa,
        "reporting_currency": org.reporting_currency,
        "business_timezone": org.business_timezone,
        "allow_overprivileged_keys": org.allow_overprivileged_keys,
    }
    kept = kept_form_take(request)
    data = kept.query() if kept is not None else request.POST or None
    form = OrganizationSettingsForm(data, initial=initial, actor_role=membership.role)
    if kept is not None:
        kept_form_mark(form, kept)
        messages.info(request, FORM_KEPT)
    if request.method == "POST" and form.is_valid():
        owner = membership.role == Role.OWNER
        try:
            saved = organizations.organization_update_settings(
                org=org,
                actor=membership,
                name=form.cleaned_data["name"],
                require_2fa=form.cleaned_data["require_2fa"],
                reporting_currency=form.cleaned_data["reporting_currency"] or None,
                business_timezone=form.cleaned_data["business_timezone"] or None,
                allow_overprivileged_keys=(
                    form.cleaned_data["allow_overprivileged_keys"] if owner else None
                ),
                stepped_up=step_up_is_fresh(request),
                request=request,
            )
        except PermissionDenied as exc:
            form.add_error(None, str(exc))
        except ValidationError as exc:
            _add_service_errors(form, exc)
        else:
            # A loosening is not saved but held for approval: say so, and what happens next.
            for held in saved.held:
                messages.warning(request, held)
            if not saved.held or saved.changed:
                messages.success(request, SETTINGS_SAVED)
            return redirect("orgs:settings", org=org.slug)
    status = 400 if request.method == "POST" else 200
    return render(request, "orgs/settings.html", {"org": org, "form": form}, status=status)


# The organization's Kraken accounts: owners and admins (MANAGE_POLICIES); the Kraken id and
# the tier are an owner's, after a fresh step-up.


@require_GET
@org_view(Capability.MANAGE_POLICIES)
def account_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    org = membership.org
    return render(
        request,
        "orgs/accounts.html",
        {
            "org": org,
            "accounts": list(kraken_accounts(org=org, include_archived=True)),
            "is_owner": membership.role == Role.OWNER,
        },
    )


def _touches_id_or_tier(form: KrakenAccountForm, account: KrakenAccount | None) -> bool:
    """Whether the posted form would set the Kraken id or the tier (which needs a step-up)."""
    data = form.data
    kraken_id = str(data.get("kraken_id", "")).strip()
    tier = str(data.get("tier", ""))
    if account is None:
        return bool(kraken_id or tier or data.get("kind") == KrakenAccount.Kind.MASTER)
    return ("kraken_id" in form.fields and kraken_id != account.kraken_id) or (
        "tier" in form.fields and tier != account.verification_tier
    )


@require_http_methods(["GET", "POST"])
@org_view(Capability.MANAGE_POLICIES)
def account_create(request: HttpRequest, membership: Membership) -> HttpResponseBase:
    is_owner = membership.role == Role.OWNER
    # An empty POST is still a submission: it gets field errors, not a blank form.
    data = request.POST if request.method == "POST" else None
    form = KrakenAccountForm(data, is_owner=is_owner)
    if request.method == "POST":
        if is_owner and _touches_id_or_tier(form, None) and not step_up_is_fresh(request):
            return step_up_redirect(request)
        if form.is_valid():
            cleaned = form.cleaned_data
            try:
                account = accounts.kraken_account_create(
                    org=membership.org,
                    actor=membership,
                    label=cleaned["label"],
                    kind=cleaned["kind"],
                    kraken_id=cleaned.get("kraken_id") or "",
                    tier=cleaned.get("tier") or "",
                    request=request,
                )
            except ValidationError as exc:
                _add_service_errors(form, exc)
            else:
                messages.success(request, ACCOUNT_ADDED.format(label=account.label))
                return redirect("orgs:account-list", org=membership.org.slug)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "orgs/account_form.html",
        {"org": membership.org, "form": form, "account": None},
        status=status,
    )


@require_http_methods(["GET", "POST"])
@org_view(Capability.MANAGE_POLICIES)
def account_edit(request: HttpRequest, membership: Membership, pk: int) -> HttpResponseBase:
    account = kraken_account_get(org=membership.org, pk=pk)
    is_owner = membership.role == Role.OWNER
    data = request.POST if request.method == "POST" else None
    form = KrakenAccountForm(data, is_owner=is_owner, instance=account)
    if request.method == "POST":
        if is_owner and _touches_id_or_tier(form, account) and not step_up_is_fresh(request):
            return step_up_redirect(request)
        if form.is_valid():
            cleaned = form.cleaned_data
            try:
                account = accounts.kraken_account_update(
                    account=account,
                    actor=membership,
                    label=cleaned["label"],
                    kraken_id=cleaned.get("kraken_id"),
                    tier=cleaned.get("tier"),
                    request=request,
                )
            except ValidationError as exc:
                _add_service_errors(form, exc)
            else:
                messages.success(request, ACCOUNT_SAVED.format(label=account.label))
                return redirect("orgs:account-list", org=membership.org.slug)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "orgs/account_form.html",
        {"org": membership.org, "form": form, "account": account},
        status=status,
    )


@require_POST
@org_view(Capability.MANAGE_POLICIES)
def account_archive(request: HttpRequest, membership: Membership, pk: int) -> HttpResponse:
    account = kraken_account_get(org=membership.org, pk=pk)
    try:
        accounts.kraken_account_archive(account=account, actor=membership, request=request)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, ACCOUNT_ARCHIVED.format(label=account.label))
    return redirect("orgs:account-list", org=membership.org.slug)


# Invitation landing page: public, because the invitee may not have an account yet.


@sensitive_variables("form")
@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
@public_view
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = invitation_by_token(token=token)
    template = "orgs/invitation_accept.html"
    if invitation is None:
        return render(request, template, {"problem": invitations.INVITATION_INVALID}, status=404)
    state = invitation_state(invitation)
    if state is not InvitationState.OPEN:
        return render(
            request, template, {"problem": invitations.INVITATION_MESSAGES[state]}, status=410
        )
    context: dict[str, Any] = {"invitation": invitation, "org": invitation.org}
    user: Any = request.user
    if user.is_authenticated:
        if email_normalize(user.email) != email_normalize(invitation.email):
            context["problem"] = invitations.INVITATION_WRONG_USER
            return render(request, template, context, status=403)
        if request.method == "POST":
            try:
                invitations.invitation_accept(invitation=invitation, user=user, request=request)
            except ValidationError as exc:
                context["problem"] = _error_text(exc)
                return render(request, template, context, status=409)
            messages.success(request, WELCOME.format(org=invitation.org.name))
            return redirect("orgs:dashboard", org=invitation.org.slug)
        return render(request, template, context)
    if get_user_model().objects.filter(email__iexact=invitation.email).exists():
        context["sign_in_url"] = reverse("accounts:login") + "?next=" + request.path
        context["problem"] = invitations.ACCOUNT_EXISTS
        return render(request, template, context)
    form = AcceptAsNewUserForm(request.POST or None, email=invitation.email)
    context["form"] = form
    if request.method == "POST" and form.is_valid():
        try:
            membership = invitations.invitation_accept_as_new_user(
                invitation=invitation,
                first_name=form.cleaned_data["first_name"],
                last_name=form.cleaned_data["last_name"],
                password=form.cleaned_data["password1"],
                request=request,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            login(request, membership.user, backend="apps.accounts.backends.EmailBackend")
            messages.success(request, WELCOME.format(org=invitation.org.name))
            return redirect("orgs:dashboard", org=invitation.org.slug)
    status = 400 if request.method == "POST" else 200
    return render(request, template, context, status=status)


# Institutional onboarding: the public application form and the staff review queue.


def _onboarding_limit(request: HttpRequest) -> str | None:
    """Count this submission against its address; the refusal once the address is over."""
    window = window_hit(
        scope="onboarding-address",
        source=client_ip(request) or "unknown",
        window=int(settings.ONBOARDING_ADDRESS_WINDOW),
    )
    if window.count > int(settings.ONBOARDING_ADDRESS_LIMIT):
        return APPLICATIONS_TOO_MANY.format(wait=window.wait)
    return None


@require_http_methods(["GET", "POST"])
@public_view
def onboarding_apply(request: HttpRequest) -> HttpResponse:
    form = OnboardingForm(request.POST or None)
    status = 400 if request.method == "POST" else 200
    if request.method == "POST" and (refusal := _onboarding_limit(request)) is not None:
        # Refused before validation: a flood costs one Redis round trip per request.
        form.add_error(None, refusal)
        status = 429
    elif request.method == "POST" and form.is_valid():
        try:
            onboarding.onboarding_apply(**form.cleaned_data, request=request)
        except ValidationError as exc:
            _add_service_errors(form, exc)
        else:
            return redirect("onboarding:apply-done")
    return render(request, "orgs/onboarding_apply.html", {"form": form}, status=status)


@require_GET
@public_view
def onboarding_apply_done(request: HttpRequest) -> HttpResponse:
    return render(request, "orgs/onboarding_done.html", {"message": APPLICATION_RECEIVED})


@require_GET
@staff_view
def onboarding_review_queue(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "orgs/onboarding_queue.html",
        {"pending": list(onboarding_pending()), "reviewed": onboarding_recently_reviewed()},
    )


@require_GET
@staff_view
def onboarding_review_detail(request: HttpRequest, pk: int) -> HttpResponse:
    application = onboarding_get(pk=pk)
    return render(
        request,
        "orgs/onboarding_review.html",
        {"application": application, "reject_form": OnboardingRejectForm()},
    )


@require_http_methods(["GET", "POST"])
@staff_view
def onboarding_approve(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: what approving will do, to confirm. POST: approve."""
    application = onboarding_get(pk=pk)
    if request.method == "GET":
        return render(request, "orgs/onboarding_approve.html", {"application": application})
    try:
        onboarding.onboarding_approve(
            application=application, reviewer=cast(User, request.user), request=request
        )
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return redirect("onboarding:review-detail", pk=application.pk)
    messages.success(
        request,
        APPLICATION_APPROVED.format(company=application.company_name, email=application.email),
    )
    return redirect("onboarding:review-queue")


@require_POST
@staff_view
def onboarding_reject(request: HttpRequest, pk: int) -> HttpResponse:
    application = onboarding_get(pk=pk)
    form = OnboardingRejectForm(request.POST)
    if form.is_valid():
        try:
            onboarding.onboarding_reject(
                application=application,
                reviewer=cast(User, request.user),
                reason=form.cleaned_data["reason"],
                tell_applicant=form.cleaned_data["tell_applicant"],
                request=request,
            )
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):  # the reason: shown beside its field
                _add_service_errors(form, exc)
            else:  # already reviewed: the detail page shows the decision
                messages.error(request, _error_text(exc))
                return redirect("onboarding:review-detail", pk=application.pk)
        else:
            messages.success(request, APPLICATION_REJECTED.format(company=application.company_name))
            return redirect("onboarding:review-queue")
    context = {"application": application, "reject_form": form}
    return render(request, "orgs/onboarding_review.html", context, status=400)
