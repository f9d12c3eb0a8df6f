"""Load the demo: organization "Demo Capital", one member per role, sandbox keys in the vault.

Idempotent: `make run` (scripts/run.py) calls it once at every start, before the portal's
processes; the web process never does. Each run sets the demo users' passwords to the current
DEMO_PASSWORD, so the password it prints is the one that works. With `--wait-for-sandbox` it
waits for the Kraken sandbox (KRAKEN_API_URL) to answer, then creates the organization's Kraken
accounts on the sandbox and in the portal (a master and a subaccount), gives the trading and
treasury members keys on them and stores the owner's designated keys for each account, so the
demo trades at once.

It refuses to run, before writing anything, unless both hold:
- the settings are not the production ones. Checked by the settings module and by the
  PRODUCTION marker that kraken_portal.settings.production sets (a deployment's own module that
  imports production carries the marker with it); not by DEBUG, which production debugging
  sessions turn on and development runs may leave off.
- KRAKEN_API_URL is the sandbox, as the sandbox itself says: its health route answers with its
  identity. Asking the service beats judging the URL (a loopback host and the usual port): it
  still holds when the sandbox runs in another container or on another port, and a local proxy
  to the real Kraken on 127.0.0.1 does not pass for it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.accounts import signin_throttle
from apps.orgs.models import KrakenAccount, Membership, Organization
from apps.orgs.permissions import Role
from apps.orgs.selectors import kraken_account_master, kraken_accounts
from apps.orgs.services.accounts import kraken_account_create, kraken_account_update
from apps.orgs.validators import normalize_kraken_account_id
from apps.vault.models import Use
from apps.vault.policy import NEEDED

DEMO_ORG_NAME = "Demo Capital"
DEMO_ORG_SLUG = "demo-capital"
DEMO_DOMAIN = "demo.test"
DEFAULT_DEMO_PASSWORD = "demo-portal-2026"  # noqa: S105 - documented demo password.
STAFF_EMAIL = f"staff@{DEMO_DOMAIN}"

# The demo's Kraken accounts on the sandbox: a master (with an IIBAN-shaped id, which the
# sandbox accepts on creation) and one subaccount under it. The sandbox gives the subaccount its
# own IIBAN (returned on creation and listed under the master), which becomes the portal's
# Kraken id of the subaccount, as an owner would copy it from Kraken.
DEMO_MASTER_ID = "AA42DEMOCAPITAL1"
DEMO_MASTER_LABEL = "Main account"
DEMO_SUBACCOUNT_LABEL = "Desk 2"
DEMO_SUBACCOUNT_USERNAME = "demo-desk-2"
DEMO_BALANCES = {
    DEMO_MASTER_LABEL: {
        "ZUSD": "1250000.0000",
        "XXBT": "25.0000000000",
        "XETH": "80.0000000000",
        "USDC": "500000.00000000",
        "DOT": "5000.0000000000",
    },
    DEMO_SUBACCOUNT_LABEL: {"ZUSD": "250000.0000", "XXBT": "5.0000000000"},
}
DEMO_WITHDRAW_KEY = "cold-storage"
DEMO_WORKFLOW_NAME = "Top up the desk's USD"
DEMO_WORKFLOW_LEVEL = "300000"  # the desk subaccount starts with 250000 USD
DEMO_WITHDRAW_ADDRESS = "bc1qdemocapitalcoldstorage0000000000000"
# The demo's reference prices for its week of balance snapshots (the value chart's history).
DEMO_PRICES_USD = {
    "USD": Decimal(1),
    "USDC": Decimal(1),
    "BTC": Decimal(90000),
    "ETH": Decimal(3000),
    "DOT": Decimal(6),
}
# (account, member's role, use, designated): members' personal keys, and the keys designated
# for unattended work on each account (stored by the owner).
DEMO_KEYS: tuple[tuple[str, str, str, bool], ...] = (
    (DEMO_MASTER_LABEL, Role.TRADER, "trading", False),
    (DEMO_MASTER_LABEL, Role.TREASURER, "funding", False),
    (DEMO_MASTER_LABEL, Role.OWNER, "trading", True),
    (DEMO_MASTER_LABEL, Role.OWNER, "funding", True),
    (DEMO_SUBACCOUNT_LABEL, Role.TRADER, "trading", False),
    (DEMO_SUBACCOUNT_LABEL, Role.OWNER, "trading", True),
    (DEMO_SUBACCOUNT_LABEL, Role.OWNER, "funding", True),
)
# Earn on the demo: auto-earn DOT on the master, and one allocation to Kraken's example
# strategy (DOT, flexible) asked by the treasurer.
DEMO_AUTO_EARN_DOT = "400"
DEMO_EARN_STRATEGY = "ESRFUO3-Q62XD-WIOIL7"
DEMO_EARN_ALLOCATION = "250"
# Labels the demo used before it had accounts; their keys are revoked when it refreshes.
LEGACY_KEY_LABEL_PREFIX = "Demo sandbox "
KEY_PERMISSIONS = {
    "trading": [
        "query_funds",
        "query_open",
        "query_closed",
        "query_ledger",
        "trade",
        "cancel",
        "websocket",
    ],
    # Exactly what the portal's own least-privilege table says funding needs, read from it so
    # the two cannot drift: a demo key that can do more would set off the portal's warning
    # about over-privileged keys, and teach the opposite of what the warning says.
    # Earn (Allocate/Deallocate) is an optional call of funding keys, which staking makes.
    "funding": sorted({*(str(permission) for permission in NEEDED[Use.FUNDING]), "earn"}),
}


def demo_key_label(account: str, use: str, designated: bool) -> str:
    return f"Demo {account} {'designated ' if designated else ''}{use} key"


PRODUCTION_SETTINGS = "kraken_portal.settings.production"
# What the sandbox's /sandbox/health says it is (apps/sandbox/control.py; the portal does not
# import the sandbox, so the word is repeated here).
SANDBOX_IDENTITY = "kraken-sandbox"

REFUSED_PRODUCTION = (
    "demo_data refuses to run with the production settings ({module}): it creates users whose "
    "password is printed on the console."
)
REFUSED_NOT_SANDBOX = (
    "demo_data refuses to run: KRAKEN_API_URL ({url}) is not the Kraken sandbox ({reason}). "
    "Demo members and keys belong to the sandbox only."
)


class SandboxUnavailable(CommandError):
    def __init__(self, message: str, *, answered: bool = False) -> None:
        super().__init__(message)
        # True when a server answered (with an HTTP error): waiting longer will not change it.
        self.answered = answered


def _demo_secret(label: str) -> tuple[str, str]:
    """A stable key and secret per member, so a sandbox restart without state re-creates them."""
    seed = hmac.new(settings.SECRET_KEY.encode(), f"demo:{label}".encode(), hashlib.sha512)
    api_key = base64.b64encode(seed.digest()[:42]).decode()
    secret = base64.b64encode(hashlib.sha512(seed.digest()).digest()).decode()
    return api_key, secret


class Command(BaseCommand):
    help = "Create or refresh the demo organization, its members and their sandbox API keys."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--wait-for-sandbox", action="store_true")
        parser.add_argument("--timeout", type=float, default=60.0)

    def handle(self, *args: Any, **options: Any) -> None:
        self._refuse_production()
        self._refuse_unless_sandbox(options["timeout"] if options["wait_for_sandbox"] else 0.0)
        password = os.environ.get("DEMO_PASSWORD", DEFAULT_DEMO_PASSWORD)
        memberships = self._people(password)
        self._desk(memberships[Role.OWNER].org)
        sandbox_note = ""
        if options["wait_for_sandbox"]:
            try:
                created = self._provision_keys(memberships)
                self._pair_rules()
                self._treasury(memberships[Role.OWNER])
                self._workflow(memberships[Role.TREASURER])
            except SandboxUnavailable as exc:
                sandbox_note = f"  (sandbox keys not provisioned: {exc})\n"
            else:
                sandbox_note = self._demo_staking(memberships, created)
        self._announce(password, sandbox_note)

    def _desk(self, org: Organization) -> None:
        """The desk's settings and an organization-wide risk limit, so the demo trader meets
        a confirmation for a large or far-off order and a limit to learn from."""
        from decimal import Decimal

        from apps.trading.models import DeskSettings, RiskLimit

        DeskSettings.objects.update_or_create(
            org=org,
            defaults={"confirm_notional": Decimal(250000), "confirm_band_pct": Decimal(5)},
        )
        RiskLimit.objects.update_or_create(
            org=org,
            account=None,
            member=None,
            defaults={
                "max_order_notional": Decimal(1000000),
                "max_daily_notional": Decimal(5000000),
                "max_open_orders": 200,
            },
        )

    def _pair_rules(self) -> None:
        """Kraken's pair rules from the sandbox at once (the hourly refresh may not have run
        yet), so the ticket knows ordermin, tick size and lot decimals from the first page."""
        from apps.kraken.models import AssetPair
        from apps.kraken.services import reference_data_refresh

        if not AssetPair.objects.exists():
            try:
                reference_data_refresh()
            except Exception as exc:  # the hourly refresh will try again
                raise SandboxUnavailable(f"pair rules not loaded: {exc}") from exc

    def _refuse_production(self) -> None:
        module = str(settings.SETTINGS_MODULE)
        if module == PRODUCTION_SETTINGS or getattr(settings, "PRODUCTION", False):
            raise CommandError(REFUSED_PRODUCTION.format(module=module))

    def _refuse_unless_sandbox(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for KRAKEN_API_URL to answer as the sandbox."""
        url = settings.KRAKEN_API_URL
        try:
            health = self._wait_for_sandbox(timeout)
        except SandboxUnavailable as exc:
            raise CommandError(REFUSED_NOT_SANDBOX.format(url=url, reason=exc)) from None
        identity = health.get("service") if isinstance(health, dict) else None
        if identity != SANDBOX_IDENTITY:
            reason = f"its /sandbox/health names no sandbox: {str(health)[:80]}"
            raise CommandError(REFUSED_NOT_SANDBOX.format(url=url, reason=reason))

    @transaction.atomic
    def _people(self, password: str) -> dict[str, Membership]:
        org, _ = Organization.objects.get_or_create(
            slug=DEMO_ORG_SLUG,
            defaults={"name": DEMO_ORG_NAME, "country": "GB", "require_2fa": False},
        )
        user_model = get_user_model()
        memberships: dict[str, Membership] = {}
        for role in Role.values:
            email = f"{role}@{DEMO_DOMAIN}"
            user = user_model.objects.filter(email=email).first()
            if user is None:
                user = user_model.objects.create_user(
                    email=email, password=password, first_name=role.title(), last_name="Demo"
                )
            self._password_reset(user, password)
            # all_objects: a demo member someone removed is still there (removal keeps the
            # row), and the default manager would miss it and hit the unique constraint.
            membership, _ = Membership.all_objects.get_or_create(
                org=org, user=user, defaults={"role": role}
            )
            if not membership.is_active:
                membership.status = Membership.Status.ACTIVE
                membership.role = role
                membership.removed_at = None
                membership.removed_by = None
                membership.save(
                    update_fields=["status", "role", "removed_at", "removed_by", "updated_at"]
                )
            memberships[role] = membership
        staff = user_model.objects.filter(email=STAFF_EMAIL).first()
        if staff is None:
            staff = user_model.objects.create_user(
                email=STAFF_EMAIL,
                password=password,
                first_name="Staff",
                last_name="Reviewer",
                is_staff=True,
            )
        self._password_reset(staff, password)
        return memberships

    def _password_reset(self, user: Any, password: str) -> None:
        """The password this run prints must be the one that works, whatever an earlier run (with
        another DEMO_PASSWORD) or a developer set; and no lockout from earlier tries stands in
        the way. Only the demo users are touched."""
        if not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        axes_reset(username=user.email)
        signin_throttle.account_delay_clear(email=user.email)

    def _control(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, auth: bool = True
    ) -> Any:
        base = settings.KRAKEN_API_URL.rstrip("/")
        headers = {"Content-Type": "application/json"}
        if auth:
            # Only after the URL has said it is the sandbox (the health route needs no token).
            headers["Authorization"] = f"Bearer {os.environ.get('SANDBOX_ADMIN_TOKEN', '')}"
        request = urllib.request.Request(  # noqa: S310 - the URL is our own sandbox's.
            base + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:200]
            raise SandboxUnavailable(
                f"{method} {path}: HTTP {exc.code} {detail}", answered=True
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SandboxUnavailable(f"{method} {path}: {exc}") from None

    def _account_exists(self, account_id: str) -> bool:
        try:
            self._control("GET", f"/sandbox/accounts/{account_id}")
        except SandboxUnavailable as exc:
            if "HTTP 404" in str(exc):
                return False
            raise
        return True

    def _wait_for_sandbox(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._control("GET", "/sandbox/health", auth=False)
            except SandboxUnavailable as exc:
                if exc.answered or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _sandbox_accounts(self) -> tuple[dict[str, tuple[str, bool]], str]:
        """The master and the subaccount on the sandbox: label → (sandbox id, created now),
        and the subaccount's IIBAN."""
        created_master = not self._account_exists(DEMO_MASTER_ID)
        if created_master:
            self._control(
                "POST",
                "/sandbox/accounts",
                {
                    "id": DEMO_MASTER_ID,
                    "tier": settings.KRAKEN_TIER,
                    "balances": DEMO_BALANCES[DEMO_MASTER_LABEL],
                },
            )
        master = self._control("GET", f"/sandbox/accounts/{DEMO_MASTER_ID}")
        subaccounts = master.get("subaccount_details") or []
        created_sub = not subaccounts
        if created_sub:
            sub = self._control(
                "POST",
                f"/sandbox/accounts/{DEMO_MASTER_ID}/subaccounts",
                {
                    "username": DEMO_SUBACCOUNT_USERNAME,
                    "balances": DEMO_BALANCES[DEMO_SUBACCOUNT_LABEL],
                },
            )
        else:
            sub = subaccounts[0]
        ids = {
            DEMO_MASTER_LABEL: (DEMO_MASTER_ID, created_master),
            DEMO_SUBACCOUNT_LABEL: (str(sub["account_id"]), created_sub),
        }
        return ids, str(sub.get("iiban") or "")

    def _portal_accounts(self, owner: Membership, sub_iiban: str) -> dict[str, KrakenAccount]:
        """The same two accounts in the portal (the master takes over a migrated "Main
        account" that has no Kraken id yet; the subaccount carries the sandbox's IIBAN)."""
        org = owner.org
        master = kraken_account_master(org=org)
        if master is None:
            master = kraken_account_create(
                org=org,
                actor=owner,
                label=DEMO_MASTER_LABEL,
                kind=KrakenAccount.Kind.MASTER,
                kraken_id=DEMO_MASTER_ID,
                tier=settings.KRAKEN_TIER,
            )
        elif master.kraken_id != DEMO_MASTER_ID:
            master = kraken_account_update(
                account=master, actor=owner, label=master.label, kraken_id=DEMO_MASTER_ID
            )
        sub = kraken_accounts(org=org).filter(label=DEMO_SUBACCOUNT_LABEL).first()
        sub_kraken_id = normalize_kraken_account_id(sub_iiban)
        if sub is None:
            sub = kraken_account_create(
                org=org,
                actor=owner,
                label=DEMO_SUBACCOUNT_LABEL,
                kind=KrakenAccount.Kind.SUBACCOUNT,
                kraken_id=sub_kraken_id,
            )
        elif sub_kraken_id and sub.kraken_id != sub_kraken_id:
            # A demo from before the sandbox gave subaccounts IIBANs, or a fresh sandbox.
            sub = kraken_account_update(
                account=sub, actor=owner, label=sub.label, kraken_id=sub_kraken_id
            )
        return {DEMO_MASTER_LABEL: master, DEMO_SUBACCOUNT_LABEL: sub}

    def _demo_staking(self, memberships: dict[str, Membership], created: bool) -> str:
        """Earn on the demo: auto-earn DOT on a fresh master account, and one allocation to the
        DOT flexible strategy asked by the treasurer (through the portal's own service: below
        the threshold it goes to Kraken, without a fresh price it waits for approval)."""
        from decimal import Decimal

        from django.core.exceptions import PermissionDenied

        from apps.staking.models import StakeRequest
        from apps.staking.services import stake_request_create

        if created:
            self._control(
                "POST",
                f"/sandbox/accounts/{DEMO_MASTER_ID}/auto-earn",
                {"asset": "DOT", "amount": DEMO_AUTO_EARN_DOT},
            )
        treasurer = memberships[Role.TREASURER]
        if StakeRequest.objects.filter(org=treasurer.org).exists():
            return ""
        account = kraken_account_master(org=treasurer.org)
        if account is None:
            return ""
        try:
            stake_request_create(
                membership=treasurer,
                account=account,
                strategy_id=DEMO_EARN_STRATEGY,
                direction="allocate",
                amount=Decimal(DEMO_EARN_ALLOCATION),
            )
        except (ValidationError, PermissionDenied) as exc:
            reason = " ".join(getattr(exc, "messages", [str(exc)]))
            return f"  (demo Earn allocation not asked: {reason})\n"
        return ""

    def _provision_keys(self, memberships: dict[str, Membership]) -> bool:
        from apps.exchange.key_check import credential_check
        from apps.vault.models import Credential
        from apps.vault.services import credential_create, credential_revoke, credential_test

        owner = memberships[Role.OWNER]
        sandbox_ids, sub_iiban = self._sandbox_accounts()
        accounts = self._portal_accounts(owner, sub_iiban)
        wanted = {demo_key_label(a, use, d) for a, _, use, d in DEMO_KEYS}
        stale = Credential.objects.filter(
            org=owner.org,
            status=Credential.Status.ACTIVE,
            label__startswith=LEGACY_KEY_LABEL_PREFIX,
        ).exclude(label__in=wanted)
        for old_key in stale:
            credential_revoke(credential=old_key, actor=owner)
        for account_label, role, use, designated in DEMO_KEYS:
            membership = memberships[role]
            label = demo_key_label(account_label, use, designated)
            api_key, secret = _demo_secret(f"{membership.user.email}:{label}")
            sandbox_id, created = sandbox_ids[account_label]
            # The sandbox keeps keys in its state file; only a fresh account needs them again.
            if created:
                self._control(
                    "POST",
                    f"/sandbox/accounts/{sandbox_id}/keys",
                    {
                        "key": api_key,
                        "secret": secret,
                        "permissions": KEY_PERMISSIONS[use],
                        "nonce_window": 0,
                    },
                )
            credential = Credential.objects.filter(
                org=membership.org, owner=membership, label=label, status=Credential.Status.ACTIVE
            ).first()
            if credential is None:
                credential = credential_create(
                    membership=membership,
                    label=label,
                    api_key=api_key,
                    secret=secret,
                    otp=None,
                    account=accounts[account_label],
                    use=use,
                    designated=designated,
                    probe=True,
                )
            elif credential.probe_status != Credential.ProbeStatus.DONE:
                try:
                    credential_test(credential=credential)
                except ValidationError:
                    continue  # a check is running right now
            else:
                continue
            # A key may trade or move funds only once checked, and the worker may not be up (or
            # the broker was down when an earlier run enqueued the check): run the real probe
            # here, designated keys included. Its conditional claim means a worker that got
            # there first does it alone.
            credential_check(credential_id=credential.pk)
        return sandbox_ids[DEMO_MASTER_LABEL][1]

    def _workflow(self, treasurer: Membership) -> None:
        """One scheduled workflow: on weekday mornings, top the desk subaccount's USD up to
        DEMO_WORKFLOW_LEVEL from the master, within caps, approved once (its approval request
        waits in the approvers' inbox). Kept as it is on later runs."""
        from apps.funding.workflow_actions import TOP_UP
        from apps.schedules.models import Workflow
        from apps.schedules.services import WorkflowInput, workflow_create

        if Workflow.objects.filter(org=treasurer.org, name=DEMO_WORKFLOW_NAME).exists():
            return
        sub = KrakenAccount.objects.filter(
            org=treasurer.org, kind=KrakenAccount.Kind.SUBACCOUNT, archived_at__isnull=True
        ).first()
        if sub is None:
            return
        workflow_create(
            membership=treasurer,
            data=WorkflowInput(
                name=DEMO_WORKFLOW_NAME,
                account_id=sub.pk,
                schedule_kind="cron",
                cron="0 9 * * 1-5",
                timezone="Europe/London",
                interval_minutes=None,
                action=TOP_UP,
                params={"asset": "USD", "level": DEMO_WORKFLOW_LEVEL},
                per_run_cap=Decimal("50000"),
                per_day_cap=Decimal("100000"),
                approval_mode="once",
                catch_up="skip",
            ),
        )

    def _treasury(self, owner: Membership) -> None:
        """The treasury's demo: a withdrawal address on Kraken for the master account,
        allow-listed in the portal's address book, and a week of hourly balance snapshots
        (at the demo's reference prices) so the value chart has a history at once."""
        from datetime import timedelta

        from django.utils import timezone

        from apps.exchange.models import BalanceSnapshot, WalletType
        from apps.funding.models import Destination
        from apps.kraken.naming import normalize_asset

        master = kraken_account_master(org=owner.org)
        if master is None:
            return
        self._control(
            "POST",
            f"/sandbox/accounts/{DEMO_MASTER_ID}/withdraw-addresses",
            {"asset": "XBT", "key": DEMO_WITHDRAW_KEY, "address": DEMO_WITHDRAW_ADDRESS},
        )
        Destination.objects.get_or_create(
            org=owner.org,
            account=master,
            asset="XBT",
            key=DEMO_WITHDRAW_KEY,
            status__in=[Destination.Status.ALLOWED, Destination.Status.PENDING],
            defaults={
                "method": "Bitcoin",
                "address": DEMO_WITHDRAW_ADDRESS,
                "verified": True,
                "label": "Cold storage",
                "status": Destination.Status.ALLOWED,
                "requested_by": owner.user,
                "allowed_at": timezone.now(),
            },
        )
        if BalanceSnapshot.objects.filter(account__org=owner.org).exists():
            return
        now = timezone.now().replace(minute=0, second=0, microsecond=0)
        accounts = {a.label: a for a in kraken_accounts(org=owner.org)}
        rows = []
        for hours_ago in range(7 * 24, 0, -1):
            # A gentle, repeatable drift around the reference prices.
            drift = Decimal(1) + Decimal((hours_ago * 37) % 41 - 20) / Decimal(1000)
            for label, balances in DEMO_BALANCES.items():
                account = accounts.get(label)
                if account is None:
                    continue
                for raw, quantity in balances.items():
                    asset = normalize_asset(raw)
                    price = DEMO_PRICES_USD.get(asset)
                    rows.append(
                        BalanceSnapshot(
                            account=account,
                            asset=asset,
                            wallet_type=WalletType.SPOT,
                            wallet_id="main",
                            quantity=Decimal(quantity),
                            price=(price if asset in ("USD", "USDC") else price * drift)
                            if price is not None
                            else None,
                            price_currency="USD" if price is not None else "",
                            taken_at=now - timedelta(hours=hours_ago),
                        )
                    )
        BalanceSnapshot.objects.bulk_create(rows)

    def _announce(self, password: str, sandbox_note: str) -> None:
        lines = [
            "",
            "Kraken Institutional Portal is starting at " + settings.SITE_URL,
            f"Demo organization: {DEMO_ORG_NAME}. Password for every login: {password}",
            *(f"  {role:<10} {role}@{DEMO_DOMAIN}" for role in Role.values),
            f"  {'staff':<10} {STAFF_EMAIL}  (onboarding review queue)",
        ]
        self.stdout.write("\n".join(lines) + "\n" + sandbox_note)
