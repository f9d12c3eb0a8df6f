"""Production hardening: `check --deploy` is clean, and pages carry a strict, nonce-based CSP."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

REPO = Path(__file__).resolve().parents[2]
NONCE_IN_HEADER = re.compile(r"script-src 'self' 'nonce-([A-Za-z0-9+/=_-]+)'")
SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.IGNORECASE)


# Production requires TLS or a password for Redis; checks never connect to it.
SECURE_REDIS_URL = "rediss://:redis-password@redis.example.test:6380/0"


def production_env(**overrides: str) -> dict[str, str]:
    anchors = Path(tempfile.gettempdir()) / "portal-test-audit-anchors"
    anchors.mkdir(exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "SECRET_KEY", "AUDIT_HMAC_KEY", "EMAIL_BACKEND"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="kraken_portal.settings.production",
        SECRET_KEY=secrets.token_urlsafe(50),
        AUDIT_HMAC_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="portal.example.test",
        AUDIT_ANCHOR_DIR=str(anchors),
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal"),
        # Production refuses a Redis URL with neither TLS nor a password at settings import;
        # nothing here connects to it.
        REDIS_URL=SECURE_REDIS_URL,
    )
    env.update(overrides)
    return env


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


CHECK_DEPLOY = """
import django
django.setup()
from django.core.management import call_command
call_command("check", deploy=True, fail_level="WARNING")
"""


def test_check_deploy_reports_no_issues_with_production_settings() -> None:
    result = run_python(CHECK_DEPLOY, production_env())
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout + result.stderr


def test_check_deploy_would_catch_a_weak_secret_key_and_no_anchor_dir() -> None:
    # The clean result above means something only if the same run does flag real problems.
    result = run_python(CHECK_DEPLOY, production_env(SECRET_KEY="short", AUDIT_ANCHOR_DIR=""))
    assert result.returncode != 0
    assert "security.W009" in result.stderr
    assert "audit.W002" in result.stderr


def test_check_deploy_warns_when_the_anchor_dir_does_not_exist(tmp_path: Path) -> None:
    result = run_python(CHECK_DEPLOY, production_env(AUDIT_ANCHOR_DIR=str(tmp_path / "nope")))
    assert result.returncode != 0
    assert "audit.W003" in result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DATABASE_URL": "sqlite:///tmp/x.sqlite3"}, "DATABASE_URL must point at PostgreSQL"),
    ],
)
def test_production_settings_refuse_to_start_misconfigured(overrides, message) -> None:
    result = run_python("import django; django.setup()", production_env(**overrides))
    assert result.returncode != 0
    assert message in result.stderr


def test_production_settings_refuse_to_start_without_a_secret_key() -> None:
    env = production_env()
    del env["SECRET_KEY"]
    result = run_python("import django; django.setup()", env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set in production." in result.stderr


AUDIT_KEY_REQUIRED = "AUDIT_HMAC_KEY must be set in production"


def without_audit_key() -> dict[str, str]:
    env = production_env()
    del env["AUDIT_HMAC_KEY"]
    return env


def test_check_deploy_fails_without_an_audit_key() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=REPO,
        env=without_audit_key(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert AUDIT_KEY_REQUIRED in result.stderr


def test_the_server_does_not_start_without_an_audit_key() -> None:
    # Two workers: uvicorn's supervisor would otherwise keep running while each worker dies on
    # import, so the refusal must come before it starts (kraken_portal/serve.py).
    result = subprocess.run(
        [sys.executable, "-m", "kraken_portal.serve", "--port", "0", "--workers", "2"],
        cwd=REPO,
        env=without_audit_key(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert AUDIT_KEY_REQUIRED in result.stderr


@pytest.mark.parametrize(
    "key",
    ["", "too-short-to-resist-a-search", "same-as-the-secret-key"],
    ids=["empty", "short", "secret-key"],
)
def test_production_settings_refuse_a_missing_short_or_shared_audit_key(key: str) -> None:
    secret = secrets.token_urlsafe(50)
    audit_key = secret if key == "same-as-the-secret-key" else key
    env = production_env(SECRET_KEY=secret, AUDIT_HMAC_KEY=audit_key)
    result = run_python("import django; django.setup()", env)
    assert result.returncode != 0
    assert AUDIT_KEY_REQUIRED in result.stderr


RESPONSE_HEADERS = """
import json, django
django.setup()
from django.test import Client
plain = Client(HTTP_HOST="portal.example.test").get("/accounts/login/")
tls = Client(HTTP_HOST="portal.example.test").get(
    "/accounts/login/", headers={"X-Forwarded-Proto": "https"}
)
print(json.dumps({
    "plain_status": plain.status_code,
    "plain_location": plain.headers.get("Location"),
    "tls_status": tls.status_code,
    "headers": dict(tls.headers),
    "cookies": {name: dict(morsel) for name, morsel in tls.cookies.items()},
}))
"""


@pytest.mark.django_db
def test_production_serves_only_https_with_hsts_and_host_only_secure_cookies(
    tmp_path: Path,
) -> None:
    from django.db import connection

    settings = connection.settings_dict
    url = (
        f"postgres://{settings['USER']}:{settings['PASSWORD']}@{settings['HOST']}:"
        f"{settings['PORT'] or 5432}/{settings['NAME']}"
    )
    # A deployment collects its static files first: pages name their hashed copies.
    env = production_env(DATABASE_URL=url, PORTAL_VAR_DIR=str(tmp_path))
    collect = "import django; django.setup(); from django.core.management import call_command;"
    collect += " call_command('collectstatic', interactive=False, verbosity=0)"
    assert run_python(collect, env).returncode == 0
    result = run_python(RESPONSE_HEADERS, env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["plain_status"] == 301
    assert seen["plain_location"] == "https://portal.example.test/accounts/login/"
    assert seen["tls_status"] == 200
    headers = seen["headers"]
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "'nonce-" in headers["Content-Security-Policy"]
    csrf = seen["cookies"]["__Host-csrftoken"]
    assert csrf["secure"] is True
    assert csrf["path"] == "/"
    assert csrf["domain"] == ""


def assert_strict_csp(response) -> str:
    policy = response.headers["Content-Security-Policy"]
    assert "unsafe-eval" not in policy
    assert "unsafe-inline" not in policy
    assert "style-src 'self'" in policy
    assert "object-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    match = NONCE_IN_HEADER.search(policy)
    assert match, policy
    nonce = match.group(1)
    html = response.content.decode()
    tags = SCRIPT_TAG.findall(html)
    assert tags, "the page has no script tags to check"
    for tag in tags:
        assert f'nonce="{nonce}"' in tag, tag
    # What the policy would block anyway must not be on the page at all.
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\shx-on", html)
    assert not re.search(r"\son[a-z]+=", html)
    return nonce


@pytest.mark.django_db
def test_the_sign_in_page_sends_a_nonce_csp_and_every_script_carries_it(client: Client) -> None:
    first = assert_strict_csp(client.get(reverse("accounts:login")))
    second = assert_strict_csp(client.get(reverse("accounts:login")))
    assert first != second  # a fresh nonce per response


@pytest.mark.django_db
def test_the_audit_trail_page_keeps_to_the_same_policy(viewer, client_for) -> None:
    from apps.audit.services import audit_record

    audit_record(action="test.csp", actor=viewer, detail={"note": "<script>alert(1)</script>"})
    response = client_for(viewer).get(reverse("audit:record-list", kwargs={"org": "acme"}))
    assert response.status_code == 200
    assert_strict_csp(response)
    assert "&lt;script&gt;" in response.content.decode()
