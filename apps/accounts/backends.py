from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from apps.core.emails import email_normalize


class EmailBackend(ModelBackend):
    """ModelBackend that matches the email case-insensitively."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if username is not None:
            username = email_normalize(username)
        return super().authenticate(request, username=username, password=password, **kwargs)
