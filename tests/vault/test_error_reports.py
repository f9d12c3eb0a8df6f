"""A vault failure's error report (debug page, admins' email) shows no secret and no key.

Django prints every frame's local variables in an error report, except those a function marks
sensitive; these tests raise real vault errors and read the frames as the report prints them.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.views.debug import ExceptionReporter

from apps.vault import crypto
from tests.vault.conftest import KEK_1, KEK_2, new_key_pair

BINDING = crypto.Binding(credential_id=1, org_id=2, owner_id=3)


def error_report_of(call: Callable[[], Any]) -> str:
    """The frame variables an error report would print for the VaultError that `call` raises."""
    try:
        call()
    except crypto.VaultError:
        exc_type, exc_value, tb = sys.exc_info()
        assert tb is not None
        # From the vault's frames on (this helper's own frame holds only `call`).
        frames = ExceptionReporter(None, exc_type, exc_value, tb.tb_next).get_traceback_frames()
        return "\n".join(f"{name}={value!r}" for frame in frames for name, value in frame["vars"])
    pytest.fail("The vault raised no error.")


def test_sealing_without_a_keyring_reports_no_secret(settings) -> None:
    pair = new_key_pair(otp="key-password-42")
    settings.PORTAL_KEYRING = ""

    report = error_report_of(
        partial(crypto.seal, binding=BINDING, secret=pair.secret, otp=pair.otp)
    )

    assert "binding=" in report  # the report does list the vault's frames
    assert pair.secret not in report
    assert "key-password-42" not in report


def test_opening_under_the_wrong_key_reports_no_key_material(settings) -> None:
    pair = new_key_pair()
    sealed = crypto.seal(binding=BINDING, secret=pair.secret, otp=None)
    settings.PORTAL_KEYRING = f"k1:{KEK_2}"  # The same key id, another key: unwrapping fails.

    report = error_report_of(partial(crypto.open_sealed, binding=BINDING, sealed=sealed))

    for kek in (KEK_1, KEK_2):
        assert repr(base64.b64decode(kek))[2:40] not in report
