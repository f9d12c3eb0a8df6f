from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from apps.orgs.models import Membership, Organization
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
