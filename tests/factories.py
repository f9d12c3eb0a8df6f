from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from apps.orgs.models import KrakenAccount, Membership, Organization
from apps.orgs.permissions import Role

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.test")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")

    @factory.post_generation
    def password(obj: Any, create: bool, extracted: str | None, **kwargs: Any) -> None:
        obj.set_password(extracted or PASSWORD)
        if create:
            obj.save(update_fields=["password"])


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Fund {n}")
    slug = factory.Sequence(lambda n: f"fund-{n}")
    country = "GB"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    org = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.VIEWER


class KrakenAccountFactory(factory.django.DjangoModelFactory):
    """A master account by default; pass kind=SUBACCOUNT, parent=... and verification_tier=""
    for a subaccount (or use `subaccount_of`)."""

    class Meta:
        model = KrakenAccount

    org = factory.SubFactory(OrganizationFactory)
    label = "Main account"
    kind = KrakenAccount.Kind.MASTER
    verification_tier = "starter"


def master_account(org: Organization, *, tier: str = "starter") -> KrakenAccount:
    """The organization's live master account, created on first use."""
    existing = KrakenAccount.objects.filter(
        org=org, kind=KrakenAccount.Kind.MASTER, archived_at__isnull=True
    ).first()
    return existing or KrakenAccountFactory(org=org, verification_tier=tier)


def subaccount_of(master: KrakenAccount, label: str) -> KrakenAccount:
    return KrakenAccountFactory(
        org=master.org,
        label=label,
        kind=KrakenAccount.Kind.SUBACCOUNT,
        parent=master,
        verification_tier="",
    )
