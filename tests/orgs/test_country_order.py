"""Country lists follow the reader's language rules: accented initials file with their letter,
not after Z."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def _countries_offered() -> list[str]:
    page = Client().get(reverse("onboarding:apply")).content.decode()
    select = re.search(r'<select name="country".*?</select>', page, re.DOTALL)
    assert select is not None
    return re.findall(r'<option value="[A-Z]{2}"[^>]*>([^<]+)</option>', select.group(0))


def _between(names: list[str], before: str, name: str, after: str) -> bool:
    return names.index(before) + 1 == names.index(name) == names.index(after) - 1


@pytest.mark.parametrize(
    ("before", "name", "after"),
    [
        ("Afghanistan", "Åland Islands", "Albania"),
        ("Tunisia", "Türkiye", "Turkmenistan"),
        ("Cuba", "Curaçao", "Cyprus"),
        ("Costa Rica", "Côte d&#x27;Ivoire", "Croatia"),
        ("Qatar", "Réunion", "Romania"),
        ("Rwanda", "Saint Barthélemy", "Saint Helena, Ascension and Tristan da Cunha"),
    ],
)
def test_accented_names_sit_with_their_letter(before: str, name: str, after: str, db: Any) -> None:
    names = _countries_offered()
    assert _between(names, before, name, after), names[names.index(before) - 1 :][:5]


def test_every_country_is_offered_once_and_none_sits_after_zimbabwe(db: Any) -> None:
    names = _countries_offered()
    assert len(names) == len(set(names)) == 249
    assert names[0] == "Afghanistan"
    assert names[-1] == "Zimbabwe"
