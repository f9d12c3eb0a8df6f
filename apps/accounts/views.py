"""Placeholder sign-in views; the accounts work replaces them with the 2FA flow."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.access import login_view, public_view

login = public_view(auth_views.LoginView.as_view(template_name="accounts/login.html"))
logout = public_view(require_POST(auth_views.LogoutView.as_view()))


@require_http_methods(["GET", "POST"])
@login_view
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/two_factor_setup.html")


@require_http_methods(["GET", "POST"])
@login_view
def two_factor_verify(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/two_factor_verify.html")
