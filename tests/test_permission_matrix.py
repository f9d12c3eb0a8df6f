"""The permission matrix of every URL, generated from the URL configuration.

Each view declares its access policy with one decorator of apps/core/access.py (or
apps/orgs/access.py for `org_view`), which sets `view.access`. This module walks the whole URL
tree, so a new view is tested as soon as it is routed: one without a policy fails, and so does
a URL with an argument this module cannot fill (add a sample to SAMPLE_KWARGS below).

What is checked, per policy:
- org views: anonymous → sign-in, a member of another organization → 404, each role without the
  capability → 403, each role with it → 200 (GET) or, for POST-only views, not refused;
- login views: anonymous → sign-in, any signed-in person → served;
- staff views: anonymous → sign-in, a signed-in non-staff person → 403, staff → served;
- public views: anyone is served.
POST-only views answer 405 to GET (the method guard) and the rules above apply to the POST.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from apps.accounts.services import STEP_UP_SESSION_KEY
from apps.core.access import Access
from apps.orgs.models import Invitation, Membership, OnboardingApplication
from apps.orgs.permissions import Role, role_can
from apps.orgs.selectors import token_hash
from tests.conftest import verified_client
from tests.factories import MembershipFactory, UserFactory, master_account

# The Django admin has its own staff-and-permission checks; it is tested on its own below.
EXCLUDED_NAMESPACES = {"admin"}
ROLES = list(Role.values)


@dataclass(frozen=True)
class Route:
    name: str  # namespaced, e.g. "orgs:member-list"
    route: str
    view: Any
    kwargs: frozenset[str]

    @property
    def access(self) -> Access | None:
        return getattr(self.view, "access", None)


def _walk(
    patterns: list[Any], prefix: str = "", namespace: str = "", kwargs: frozenset[str] = frozenset()
) -> Iterator[Route]:
    for pattern in patterns:
        names = kwargs | frozenset(pattern.pattern.regex.groupindex)
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            ns = ":".join(filter(None, [namespace, pattern.namespace or ""]))
            if pattern.namespace in EXCLUDED_NAMESPACES:
                continue
            yield from _walk(pattern.url_patterns, route, ns, names)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace else str(pattern.name)
            yield Route(name, route, pattern.callback, names)


ROUTES = sorted(_walk(get_resolver().url_patterns), key=lambda r: r.name)


@dataclass
class World:
    """The objects a URL's sample arguments point at, created on demand."""

    request: pytest.FixtureRequest
    org: Any
    who: str

    def member(self, who: str) -> Membership:
        return self.request.getfixturevalue(who)  # type: ignore[no-any-return]

    def target_member(self) -> Membership:
        return MembershipFactory(
            org=self.org, role=Role.VIEWER, user=UserFactory(email="target@acme.test")
        )

    def invitation(self, token: str = "") -> Invitation:
        return Invitation.objects.create(
            org=self.org,
            email="invitee@example.test",
            role=Role.VIEWER,
            token_hash=token_hash(token or secrets.token_urlsafe(16)),
            expires_at=timezone.now() + timedelta(days=7),
        )

    def application(self) -> OnboardingApplication:
        return OnboardingApplication.objects.create(
            company_name="Sample Fund",
            country="GB",
            first_name="Sam",
            last_name="Ple",
            email="sam@sample.test",
            business_type="hedge_fund",
            assets_under_management="lt_10m",
        )

    def own_credential(self) -> dict[str, Any]:
        """A key of the acting member (keys are private to their owner), else of the owner."""
        from apps.vault.services import credential_create
        from tests.vault.conftest import KEK_1, new_key_pair

        self.request.getfixturevalue("settings").PORTAL_KEYRING = f"k1:{KEK_1}"
        # Every role may hold a key for some use (read-only at least) and see its own keys.
        holder = self.who if self.who in ROLES else "owner"
        from apps.vault.policy import uses_for_role

        pair = new_key_pair()
        membership = self.member(holder)
        credential = credential_create(
            membership=membership,
            label="Matrix key",
            api_key=pair.api_key,
            secret=pair.secret,
            otp=None,
            account=master_account(self.org),
            # A use the holder's role has: keys are stored only for those.
            use=uses_for_role(membership.role)[0],
            probe=False,
            designated=False,
        )
        return {"pk": credential.pk}

    def operation(self) -> dict[str, Any]:
        """An unsettled exchange operation of the organization (its outcome unknown)."""
        from apps.exchange.models import Operation, State
        from apps.vault.models import Credential

        credential = Credential.objects.get(pk=self.own_credential()["pk"])
        operation = Operation.objects.create(
            org=credential.org,
            account=credential.account,
            credential=credential,
            kind="AddOrder",
            params={"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "1"},
            reference={"cl_ord_id": "matrix"},
            state=State.UNKNOWN,
        )
        return {"pk": operation.pk}

    def market_pair(self) -> dict[str, Any]:
        """A pair the market feeder has announced (its list lives in Redis)."""
        import redis
        from django.conf import settings

        from apps.market.store import PAIRS_KEY, dumps

        client = redis.Redis.from_url(settings.REDIS_URL)
        previous = client.get(PAIRS_KEY)
        client.set(
            PAIRS_KEY, dumps([{"symbol": "BTC/USD", "price_decimals": 1, "qty_decimals": 8}])
        )

        def restore() -> None:
            if previous is None:
                client.delete(PAIRS_KEY)
            else:
                client.set(PAIRS_KEY, previous)

        self.request.addfinalizer(restore)
        return {"symbol": "BTC-USD"}


def _own_order(world: World) -> dict[str, Any]:
    """A settled (cancelled) desk order the acting member placed, else the owner's: actions on
    it answer 409 (nothing to do), so only the access policy can refuse."""
    from apps.trading.models import Order, OrderState

    holder = world.member(world.who if world.who in ROLES else "owner")
    order = Order.objects.create(
        org=world.org,
        account=master_account(world.org),
        placed_by=holder,
        pair="BTC/USD",
        side="buy",
        order_type="limit",
        volume=1,
        price=1000,
        state=OrderState.CANCELED,
    )
    return {"pk": order.pk}


def _own_preflight(world: World) -> dict[str, Any]:
    """A validate-only AddOrder the acting member asked for."""
    from apps.exchange.models import Operation, State
    from apps.vault.models import Credential

    credential = Credential.objects.get(pk=world.own_credential()["pk"])
    holder = world.member(world.who if world.who in ROLES else "owner")
    operation = Operation.objects.create(
        org=credential.org,
        account=credential.account,
        credential=credential,
        kind="AddOrder",
        params={"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "1"},
        reference={"cl_ord_id": "preflight"},
        validate_only=True,
        requested_by=holder.user,
        state=State.DONE,
    )
    return {"pk": operation.pk}


def _own_notification(world: World) -> dict[str, Any]:
    """A notification of the acting member (others' are 404), else of the owner."""
    from apps.notifications.models import Notification

    holder = world.member(world.who if world.who in ROLES else "owner")
    notification = Notification.objects.create(
        org=world.org, recipient=holder.user, kind="approvals.needed", title="Sample"
    )
    return {"pk": notification.pk}


def _approval(world: World) -> dict[str, Any]:
    """An admin's pending request to make a viewer a trader."""
    from apps.approvals.models import ApprovalRequest
    from apps.approvals.role_grants import role_grant_gate

    role_grant_gate(
        actor=world.member("admin"),
        role=Role.TRADER,
        member=world.target_member(),
        email=None,
        request=None,
    )
    return {"pk": ApprovalRequest.objects.get(org=world.org).pk}


def _destination(world: World) -> Any:
    """An allow-listed withdrawal destination on the organization's master account."""
    from apps.funding.models import Destination

    return Destination.objects.create(
        org=world.org,
        account=master_account(world.org),
        asset="XBT",
        key="matrix-cold",
        address="bc1qmatrix",
        status=Destination.Status.ALLOWED,
        requested_by=world.member("owner").user,
    )


def _withdrawal(world: World) -> dict[str, Any]:
    """A withdrawal waiting for its approval (cancelling it needs no call to Kraken)."""
    from decimal import Decimal

    from apps.funding.models import Withdrawal

    destination = _destination(world)
    withdrawal = Withdrawal.objects.create(
        org=world.org,
        account=destination.account,
        destination=destination,
        asset="XBT",
        amount=Decimal("0.1"),
        key=destination.key,
        address=destination.address,
        fee_preview=Decimal("0.00015"),
        amount_received_preview=Decimal("0.09985"),
        max_fee=Decimal("0.00018"),
        requested_by=world.member("owner").user,
    )
    return {"pk": withdrawal.pk}


def _accept_token(world: World) -> dict[str, Any]:
    token = secrets.token_urlsafe(32)
    world.invitation(token)
    return {"token": token}


def _workflow(world: World) -> dict[str, Any]:
    """A workflow on the test action (tests/schedules/actions.py, loaded by the test settings),
    set up by the treasurer."""
    from apps.schedules.services import workflow_create
    from tests.schedules.conftest import workflow_input

    treasurer = world.member("treasurer")
    return {"pk": workflow_create(membership=treasurer, data=workflow_input(treasurer)).pk}


def _run(world: World) -> dict[str, Any]:
    from apps.schedules.models import Run, Workflow

    workflow = Workflow.objects.get(pk=_workflow(world)["pk"])
    run = Run.objects.create(
        org=world.org, workflow=workflow, slot="2026-01-01T09:00 UTC", scheduled_at=timezone.now()
    )
    return {"pk": run.pk}


# Arguments other than the organization slug, per URL name. A new URL with another argument
# fails loudly until it gets an entry here.
SAMPLE_KWARGS: dict[str, Callable[[World], dict[str, Any]]] = {
    "orgs:member-role": lambda w: {"pk": w.target_member().pk},
    "orgs:member-remove": lambda w: {"pk": w.target_member().pk},
    "orgs:invitation-revoke": lambda w: {"pk": w.invitation().pk},
    "orgs:invitation-resend": lambda w: {"pk": w.invitation().pk},
    "invitations:accept": _accept_token,
    "onboarding:review-detail": lambda w: {"pk": w.application().pk},
    "onboarding:review-approve": lambda w: {"pk": w.application().pk},
    "onboarding:review-reject": lambda w: {"pk": w.application().pk},
    "vault:credential-detail": World.own_credential,
    "vault:credential-test": World.own_credential,
    "vault:credential-revoke": World.own_credential,
    "vault:credential-delete": World.own_credential,
    "exchange:operation-reconcile": World.operation,
    "vault:credential-designate": World.own_credential,
    "vault:oversight-revoke": World.own_credential,
    "orgs:account-edit": lambda w: {"pk": master_account(w.org).pk},
    "orgs:account-archive": lambda w: {"pk": master_account(w.org).pk},
    "market:pair": World.market_pair,
    "notifications:read": _own_notification,
    "approvals:request-detail": _approval,
    "approvals:request-decide": _approval,
    "approvals:request-cancel": _approval,
    "approvals:policy-edit": lambda w: {"kind": "orgs.role_grant"},
    "funding:address-remove": lambda w: {"pk": _destination(w).pk},
    "funding:withdrawal-detail": _withdrawal,
    "funding:withdrawal-cancel": _withdrawal,
    "funding:balances-refresh": lambda w: {"pk": master_account(w.org).pk},
    "market:watch-add": World.market_pair,
    "market:watch-remove": World.market_pair,
    "trading:order-detail": _own_order,
    "trading:order-amend": _own_order,
    "trading:order-cancel": _own_order,
    "trading:order-resubmit": _own_order,
    "trading:preflight-result": _own_preflight,
    "schedules:workflow-detail": _workflow,
    "schedules:workflow-edit": _workflow,
    "schedules:workflow-pause": _workflow,
    "schedules:workflow-resume": _workflow,
    "schedules:workflow-archive": _workflow,
    "schedules:run-detail": _run,
    # A link that does not check out: Django's view answers with its "invalid link" page.
    "accounts:password-reset-confirm": lambda w: {"uidb64": "MQ", "token": "not-a-token"},
}

# Views whose own rule is narrower than their capability: only these roles pass.
NARROWER_RULES: dict[str, set[str]] = {
    # Designating a key for unattended work is for owners and admins (apps/vault/services.py).
    "vault:credential-designate": {Role.OWNER, Role.ADMIN},
    # Approval policies are edited by owners only (apps/approvals/policy_changes.py).
    "approvals:policy-edit": {Role.OWNER},
    # The kill switch is for owners and admins (apps/trading/services.py).
    "trading:kill-switch": {Role.OWNER, Role.ADMIN},
    "trading:kill-switch-release": {Role.OWNER, Role.ADMIN},
    # Pausing and resuming a workflow: those who set them up and those who manage policies
    # (apps/schedules/services.py can_manage).
    "schedules:workflow-pause": {Role.OWNER, Role.ADMIN, Role.TREASURER},
    "schedules:workflow-resume": {Role.OWNER, Role.ADMIN, Role.TREASURER},
    "schedules:workflow-archive": {Role.OWNER, Role.ADMIN, Role.TREASURER},
}


def _personas(route: Route) -> list[str]:
    access = route.access
    if access is None:
        return ["no-policy"]
    return {
        "org": ["anonymous", "outsider", *ROLES],
        "login": ["anonymous", "member"],
        "staff": ["anonymous", "member", "staff"],
        "public": ["anonymous"],
    }[access.kind]


CASES = [
    pytest.param(route, who, id=f"{route.name}-{who}")
    for route in ROUTES
    for who in _personas(route)
]


def _client(world: World, who: str) -> Client:
    """Signed in, 2FA-verified and freshly stepped up, so only the access policy can refuse."""
    if who == "anonymous":
        return Client()
    user: Any
    if who == "staff":
        user = UserFactory(email="reviewer@kraken.test", is_staff=True)
    elif who == "member":
        user = world.member("viewer").user
    else:
        user = world.member(who).user
    client = verified_client(user)
    session = client.session
    session[STEP_UP_SESSION_KEY] = time.time()
    session.save()
    return client


def _is_sign_in_redirect(response: Any) -> bool:
    return bool(
        response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    )


def _expect(route: Route, who: str, response: Any, method: str) -> None:
    access = route.access
    assert access is not None
    status = response.status_code
    where = f"{method} {route.name} as {who}: {status}"
    assert status < 500, where
    if who == "anonymous" and access.kind != "public":
        assert _is_sign_in_redirect(response), where
        return
    if access.kind == "public":
        # Public pages serve anyone (some send a visitor with nothing pending to sign in).
        assert status < 400, where
    elif access.kind == "org":
        assert access.capability is not None
        if who == "outsider":
            assert status == 404, where
        elif not role_can(who, access.capability) or who not in NARROWER_RULES.get(
            route.name, {who}
        ):
            assert status == 403, where
        elif method == "GET":
            assert status == 200, where
        else:
            assert status not in {403, 404, 405}, where
    elif access.kind == "staff" and who == "member":
        assert status == 403, where
    elif method == "GET" and access.kind == "staff":
        assert status == 200, where
    else:
        assert status not in {403, 404, 405}, where
        assert not _is_sign_in_redirect(response), where


def test_the_url_configuration_has_routes_to_check() -> None:
    names = {route.name for route in ROUTES}
    assert {"orgs:dashboard", "orgs:member-list", "onboarding:apply", "core:home"} <= names


def test_every_view_declares_an_access_policy() -> None:
    missing = [f"{r.name} ({r.route})" for r in ROUTES if r.access is None]
    assert missing == [], (
        "Views without an access decorator (apps/core/access.py, apps/orgs/access.py): "
        + ", ".join(missing)
    )


def test_every_sample_argument_entry_belongs_to_a_url() -> None:
    names = {route.name for route in ROUTES}
    assert set(SAMPLE_KWARGS) <= names
    assert set(NARROWER_RULES) <= names


@pytest.mark.parametrize(("route", "who"), CASES)
def test_access_matrix(route: Route, who: str, request: pytest.FixtureRequest, db: Any) -> None:
    assert route.access is not None, f"{route.name} has no access policy decorator"
    world = World(request=request, org=request.getfixturevalue("org"), who=who)
    extra = route.kwargs - {"org"}
    if extra:
        assert route.name in SAMPLE_KWARGS, (
            f"URL {route.name!r} takes {sorted(extra)}: add sample arguments for it to "
            "SAMPLE_KWARGS in tests/test_permission_matrix.py"
        )
    kwargs = SAMPLE_KWARGS[route.name](world) if route.name in SAMPLE_KWARGS else {}
    if "org" in route.kwargs:
        kwargs["org"] = world.org.slug
    url = reverse(route.name, kwargs=kwargs)
    client = _client(world, who)

    response = client.get(url)
    if response.status_code == 405:
        # The method guard: a POST-only view refuses GET whoever asks, and says what it allows.
        assert "GET" not in response.get("Allow", ""), route.name
        response = client.post(url)
        _expect(route, who, response, "POST")
    else:
        _expect(route, who, response, "GET")


def test_the_admin_site_sends_anonymous_visitors_to_its_sign_in(client: Client, db: Any) -> None:
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_anonymous_user_is_not_a_member() -> None:
    # Guards the assumption the matrix makes for anonymous visitors.
    assert not AnonymousUser().is_authenticated
