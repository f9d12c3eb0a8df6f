"""Deposits: methods and addresses per account and asset (a new address on request), a QR code
rendered on the server, the history with Kraken's status, and new deposits announced live and
notified when the account's ledger shows them (the private stream's ledger hook)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape

from apps.core.realtime import member_event_on_commit
from apps.core.trail import audit_record
from apps.exchange.models import LedgerEntry
from apps.funding import kraken_funding
from apps.kraken.errors import KrakenError
from apps.notifications.services import notify
from apps.orgs.models import KrakenAccount, Membership
from apps.orgs.permissions import Capability
from apps.vault.models import Use
from apps.vault.selectors import NoCredential, credential_for

logger = logging.getLogger(__name__)

ANNOUNCE_ELEMENT = "deposit-announcement"
NO_KEY = "No funding key can read {account}: {reason}"
KRAKEN_FAILED = "Kraken could not answer: {reason}"
NO_ADDRESS_METHOD = "Kraken gives no addresses for {method} (a bank method: see its reference)."


@dataclass
class DepositPage:
    account: KrakenAccount
    asset: str
    methods: list[kraken_funding.DepositMethod] = field(default_factory=list)
    method: str = ""
    addresses: list[kraken_funding.DepositAddress] = field(default_factory=list)
    history: list[kraken_funding.DepositState] = field(default_factory=list)
    problem: str = ""


def deposit_page(
    *,
    membership: Membership,
    account: KrakenAccount,
    asset: str,
    method: str = "",
    new: bool = False,
) -> DepositPage:
    """Read Kraken's deposit methods for the asset, the addresses of the chosen method (a new
    one when `new`: the caller checked the member may ask for it) and the account's deposit
    history, with the member's funding key on the account, else its designated one."""
    page = DepositPage(account=account, asset=asset)
    try:
        credential = credential_for(membership=membership, account=account, use=Use.FUNDING)
    except NoCredential as error:
        page.problem = NO_KEY.format(account=account.label, reason=error)
        return page
    try:
        page.history = kraken_funding.deposit_status(credential=credential)
        if not asset:
            return page
        page.methods = kraken_funding.deposit_methods(credential=credential, asset=asset)
        chosen = next((m for m in page.methods if m.method == method), None) or next(
            iter(page.methods), None
        )
        if chosen is None:
            return page
        page.method = chosen.method
        if not chosen.gen_address:
            page.problem = NO_ADDRESS_METHOD.format(method=chosen.method)
            return page
        page.addresses = kraken_funding.deposit_addresses(
            credential=credential, asset=asset, method=chosen.method, new=new
        )
        if new:
            audit_record(
                action="funding.deposit.address_new",
                actor=membership,
                target=account,
                detail={"asset": asset, "method": chosen.method},
            )
    except KrakenError as error:
        page.problem = KRAKEN_FAILED.format(reason=error.hint)
    return page


def qr_svg(text: str) -> str:
    """A QR code of `text` as inline SVG, rendered here (no third party sees the address)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathFillImage, box_size=8, border=2)
    svg: str = image.to_string(encoding="unicode")
    return svg.replace("<svg ", f'<svg role="img" aria-label="QR code of {escape(text)}" ', 1)


def _audience(account: KrakenAccount) -> list[int]:
    return [
        m.user_id
        for m in Membership.objects.filter(org_id=account.org_id)
        if m.can(Capability.REQUEST_FUNDING) or m.can(Capability.APPROVE_FUNDING)
    ]


def on_ledger_entry(entry: LedgerEntry) -> None:
    """Stream hook: a deposit entry on one of an organization's accounts is announced live on
    the treasury pages and notified to the members who move or approve funds."""
    if entry.type != "deposit" or entry.amount <= 0:
        return
    account = KrakenAccount.objects.select_related("org").get(pk=entry.account_id)
    people = _audience(account)
    amount = f"{entry.amount.normalize():f} {entry.asset}"
    title = f"Deposit received: {amount} on {account.label}"
    notify(
        org=account.org,
        user_ids=people,
        kind="funding.deposit",
        title=title,
        link=reverse("funding:deposits", kwargs={"org": account.org.slug})
        + f"?account={account.pk}",
    )
    html = render_to_string(
        "funding/_cards.html#deposit-announcement",
        {"entry": entry, "account": account, "amount": amount, "oob": True},
    )
    member_event_on_commit(
        org_id=account.org_id,
        user_ids=[m.user_id for m in Membership.objects.filter(org_id=account.org_id)],
        parts=[(ANNOUNCE_ELEMENT, html.strip())],
    )
