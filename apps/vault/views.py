"""API-key pages. Adding, testing, deleting and designating a key need MANAGE_KEYS; every
member may see and revoke their own keys (VIEW), so a member demoted to a role without keys
still reads why their keys became cancel-only and can revoke them. Which key a member may see
or change is decided by apps.vault.selectors (404 for another member's key, 403 for a
designated key and a member who is neither owner nor admin). Adding, deleting and designating a
key need a fresh 2FA step-up. Owners and admins see every member's keys, masked, on the
oversight page (OVERSEE_KEYS) and revoke them with a step-up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.stepup import (
    FORM_KEPT,
    kept_form_mark,
    kept_form_take,
    step_up_for,
    step_up_required,
)
from apps.orgs.access import org_view
from apps.orgs.models import Membership
from apps.orgs.permissions import Capability
from apps.vault import crypto, services
from apps.vault.forms import CredentialForm
from apps.vault.models import Credential, Permission
from apps.vault.policy import Assessment, assess
from apps.vault.selectors import (
    KEY_MANAGERS,
    credential_accounts,
    credential_get,
    credential_get_overseen,
    credential_list,
    credentials_overseen,
)

KEY_SAVED = (
    "API key “{label}” saved. Its private key is encrypted and will not be shown again; "
    "its permissions are being checked."
)
KEY_REVOKED = (
    "API key “{label}” revoked: its private key is erased from the portal's live database. "
    "Delete the key on Kraken too."
)
# What the page of a revoked (or refused) key says for as long as the key is listed.
KEY_ERASED_NOTICE = (
    "Its private key was erased from the portal's live database at that moment. Database "
    "backups taken before then keep their encrypted copy until they expire ({days} days "
    "after they were taken): delete the key on Kraken too, so that no copy can be used."
)
TEST_NEVER = "Not tested yet."
TEST_RUNNING = "Testing the connection… (started {at})"
TEST_OK = "Connection OK: Kraken accepted the key and listed its permissions ({at})."
TEST_PARTIAL = "Connection OK, but some permissions could not be checked ({at}): {error}"
TEST_FAILED = "Connection failed ({at}): {error}"
TEST_EARLIER = " The permissions below are from the test of {at}."
KEY_DELETED = "API key “{label}” deleted. Delete the key on Kraken too."
KEY_DESIGNATED = "“{label}” is now the designated {use} key of {account}."
KEY_UNDESIGNATED = "“{label}” is no longer designated for unattended work."
ADD_KEY_STEP_UP = "Adding an API key"
TEST_STARTED = "Checking the permissions of “{label}”…"
KEY_REVOKED_BY_OVERSEER = "{owner}'s API key “{label}” revoked and its private key destroyed."


@dataclass(frozen=True)
class PermissionRow:
    name: str
    label: str
    state: str  # "granted", "denied", "unknown" or "unchecked"
    excess: bool


@dataclass(frozen=True)
class TestResult:
    """The last "Test connection": its outcome as a sentence and when, in the reader's zone."""

    state: str  # "never", "running", "ok", "partial" or "failed"
    message: str
    iso: str  # the moment, for <time datetime>; "" when never tested


def local_moment(moment: datetime) -> str:
    """`2026-12-01 16:40:12 CET (Europe/Paris)`: to the second, in the reader's time zone
    (TimezoneMiddleware activates the member's), naming the zone."""
    zone = timezone.get_current_timezone()
    local = timezone.localtime(moment, zone)
    abbreviation, name = local.strftime("%Z"), str(zone)
    named = abbreviation if abbreviation == name else f"{abbreviation} ({name})"
    return f"{local:%Y-%m-%d %H:%M:%S} {named}"


def _test_result(credential: Credential) -> TestResult:
    status = Credential.ProbeStatus
    if credential.probe_in_progress:
        started = credential.probe_started_at or credential.updated_at
        return TestResult("running", TEST_RUNNING.format(at=local_moment(started)), "")
    if credential.probe_status == status.FAILED and credential.probe_started_at:
        at = credential.probe_started_at
        message = TEST_FAILED.format(at=local_moment(at), error=credential.last_error or "—")
        if credential.permissions_checked_at:
            message += TEST_EARLIER.format(at=local_moment(credential.permissions_checked_at))
        return TestResult("failed", message, at.isoformat())
    if credential.probe_status == status.DONE and credential.permissions_checked_at:
        at = credential.permissions_checked_at
        if credential.last_error:
            message = TEST_PARTIAL.format(at=local_moment(at), error=credential.last_error)
            return TestResult("partial", message, at.isoformat())
        return TestResult("ok", TEST_OK.format(at=local_moment(at)), at.isoformat())
    return TestResult("never", TEST_NEVER, "")


@dataclass(frozen=True)
class CredentialRow:
    credential: Credential
    assessment: Assessment
    permissions: list[PermissionRow]
    can_manage: bool  # may revoke it
    can_change: bool  # may also test, delete or designate it (MANAGE_KEYS)
    can_designate: bool  # may designate it or withdraw its designation
    test: TestResult


def _row(credential: Credential, membership: Membership) -> CredentialRow:
    found = credential.permissions or {}
    # A revoked key can do nothing any more, so it gets no least-privilege warnings.
    assessment = assess(use=credential.use, permissions=found if credential.is_active else {})
    rows = []
    for name, label in Permission.choices:
        if name not in found:
            state = "unchecked"
        else:
            state = {True: "granted", False: "denied"}.get(found[name], "unknown")
        rows.append(PermissionRow(name, label, state, name in assessment.excess))
    is_manager = membership.role in KEY_MANAGERS
    can_manage = not credential.designated or is_manager
    can_change = can_manage and membership.can(Capability.MANAGE_KEYS)
    can_designate = can_change and is_manager and credential.owner.role in KEY_MANAGERS
    return CredentialRow(
        credential,
        assessment,
        rows,
        can_manage,
        can_change,
        can_designate,
        _test_result(credential),
    )


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


@never_cache
@require_GET
@org_view(Capability.VIEW)
def credential_list_view(request: HttpRequest, membership: Membership) -> HttpResponse:
    rows = [_row(c, membership) for c in credential_list(membership=membership)]
    polling = any(row.credential.probe_in_progress for row in rows)
    template = "vault/credential_list.html"
    if getattr(request, "htmx", False):
        template += "#credential-table"
    context = {
        "rows": rows,
        "polling": polling,
        "can_add": membership.can(Capability.MANAGE_KEYS),
    }
    return render(request, template, context)


# Key pages are never cached (never_cache sends Cache-Control: no-store): the form may be
# re-rendered with what was typed, and the others describe a key's powers.
@sensitive_variables("data", "form")
@sensitive_post_parameters("secret", "otp")
@never_cache
@require_http_methods(["GET", "POST"])
@org_view(Capability.MANAGE_KEYS)
@step_up_for(purpose=ADD_KEY_STEP_UP, keep_form=CredentialForm)
def credential_create_view(request: HttpRequest, membership: Membership) -> HttpResponse:
    status = 200
    kept = kept_form_take(request)
    if kept is not None:
        # Back from the step-up or enrolment: the fields as typed, the private key asked again.
        form = CredentialForm(kept.query(), membership=membership)
        kept_form_mark(form, kept)
        messages.info(request, FORM_KEPT)
    elif request.method == "POST":
        form = CredentialForm(request.POST, membership=membership)
        if form.is_valid():
            data = form.cleaned_data
            try:
                credential = services.credential_create(
                    membership=membership,
                    label=data["label"],
                    api_key=data["api_key"],
                    secret=data["secret"],
                    otp=data["otp"],
                    account=data["account"],
                    use=data["use"],
                    designated=bool(data.get("designated")),
                    request=request,
                )
            except ValidationError as error:
                form.add_error(None, error)
            except crypto.VaultError as error:
                form.add_error(None, str(error))
                status = 503
            else:
                messages.success(request, KEY_SAVED.format(label=credential.label))
                return redirect(
                    "vault:credential-detail", org=membership.org.slug, pk=credential.pk
                )
    else:
        form = CredentialForm(membership=membership)
    context = {"form": form, "no_accounts": not credential_accounts(membership=membership)}
    return render(request, "vault/credential_form.html", context, status=status)


@never_cache
@require_GET
@org_view(Capability.VIEW)
def credential_detail_view(request: HttpRequest, membership: Membership, pk: int) -> HttpResponse:
    credential = credential_get(membership=membership, credential_id=pk)
    template = "vault/credential_detail.html"
    if getattr(request, "htmx", False):
        template += "#credential-permissions"
    context = {
        "row": _row(credential, membership),
        "revoked_at": local_moment(credential.revoked_at) if credential.revoked_at else "",
        "key_erased_notice": KEY_ERASED_NOTICE.format(days=settings.BACKUP_RETENTION_DAYS),
    }
    return render(request, template, context)


@require_POST
@org_view(Capability.MANAGE_KEYS)
def credential_test_view(request: HttpRequest, membership: Membership, pk: int) -> HttpResponseBase:
    credential = credential_get(membership=membership, credential_id=pk, manage=True)
    try:
        credential = services.credential_test(credential=credential)
    except ValidationError as error:
        if getattr(request, "htmx", False):
            return HttpResponse(_error_text(error), status=409)
        messages.error(request, _error_text(error))
    else:
        if getattr(request, "htmx", False):
            return render(
                request,
                "vault/credential_detail.html#credential-permissions",
                {"row": _row(credential, membership)},
            )
        messages.info(request, TEST_STARTED.format(label=credential.label))
    return redirect("vault:credential-detail", org=membership.org.slug, pk=credential.pk)


@require_http_methods(["GET", "POST"])
@org_view(Capability.VIEW)
def credential_revoke_view(
    request: HttpRequest, membership: Membership, pk: int
) -> HttpResponseBase:
    credential = credential_get(membership=membership, credential_id=pk, manage=True)
    if request.method == "POST":
        try:
            services.credential_revoke(credential=credential, actor=membership, request=request)
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            messages.success(request, KEY_REVOKED.format(label=credential.label))
        return redirect("vault:credential-detail", org=membership.org.slug, pk=credential.pk)
    return render(
        request,
        "vault/credential_confirm.html",
        {"credential": credential, "action": "revoke"},
    )


@require_http_methods(["GET", "POST"])
@org_view(Capability.MANAGE_KEYS)
@step_up_required
def credential_delete_view(
    request: HttpRequest, membership: Membership, pk: int
) -> HttpResponseBase:
    credential = credential_get(membership=membership, credential_id=pk, manage=True)
    if request.method == "POST":
        label = credential.label
        services.credential_delete(credential=credential, actor=membership, request=request)
        messages.success(request, KEY_DELETED.format(label=label))
        return redirect("vault:credential-list", org=membership.org.slug)
    return render(
        request,
        "vault/credential_confirm.html",
        {"credential": credential, "action": "delete"},
    )


@require_POST
@org_view(Capability.MANAGE_KEYS)
@step_up_required
def credential_designate_view(
    request: HttpRequest, membership: Membership, pk: int
) -> HttpResponseBase:
    credential = credential_get(membership=membership, credential_id=pk, manage=True)
    designated = request.POST.get("designated") == "1"
    try:
        credential = services.credential_designate(
            credential=credential, actor=membership, designated=designated, request=request
        )
    except ValidationError as error:
        messages.error(request, _error_text(error))
    else:
        message = KEY_DESIGNATED if designated else KEY_UNDESIGNATED
        use = credential.get_use_display().lower()
        messages.success(
            request, message.format(label=credential.label, use=use, account=credential.account)
        )
    return redirect("vault:credential-detail", org=membership.org.slug, pk=credential.pk)


@require_GET
@org_view(Capability.OVERSEE_KEYS)
def oversight_list_view(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Every member's keys, masked: label, use, permissions, state, last used."""
    rows = [_row(c, membership) for c in credentials_overseen(org=membership.org)]
    return render(request, "vault/oversight.html", {"rows": rows})


@require_POST
@org_view(Capability.OVERSEE_KEYS)
@step_up_required
def oversight_revoke_view(
    request: HttpRequest, membership: Membership, pk: int
) -> HttpResponseBase:
    credential = credential_get_overseen(org=membership.org, credential_id=pk)
    try:
        services.credential_revoke(credential=credential, actor=membership, request=request)
    except ValidationError as error:
        messages.error(request, _error_text(error))
    else:
        messages.success(
            request,
            KEY_REVOKED_BY_OVERSEER.format(
                owner=credential.owner.user.email, label=credential.label
            ),
        )
    return redirect("vault:oversight", org=membership.org.slug)
