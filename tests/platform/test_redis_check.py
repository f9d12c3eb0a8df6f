"""Production refuses a Redis that anyone on its network could use: every Redis URL needs TLS
(rediss://) or a password, refused when the production settings load (so the server, the worker
and beat do not start) and reported by the system check core.E001."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from apps.core.checks import redis_security_check
from tests.platform.test_deploy import REPO, SECURE_REDIS_URL, production_env, run_python

CHECK = """
import django
django.setup()
from django.core.management import call_command
call_command("check")
"""


def errors_for(settings: Any, **urls: str) -> list[str]:
    settings.REDIS_REQUIRE_SECURE = True
    settings.REDIS_URL = "rediss://:pw@redis.example.test:6380/0"
    settings.CELERY_BROKER_URL = settings.REDIS_URL
    settings.CELERY_RESULT_BACKEND = settings.REDIS_URL
    settings.KRAKEN_REDIS_URL = ""
    for name, url in urls.items():
        setattr(settings, name, url)
    found = redis_security_check()
    assert all(message.id == "core.E001" for message in found)
    return [str(message.msg) for message in found]


@pytest.mark.parametrize(
    "url",
    [
        "rediss://redis.example.test:6380/0",
        "redis://:s3cret@redis.example.test:6379/0",
        "redis://portal:s3cret@redis.example.test:6379/0",
        "unix:///run/redis.sock?password=s3cret&db=2",
    ],
)
def test_tls_or_a_password_passes(settings: Any, url: str) -> None:
    assert errors_for(settings, REDIS_URL=url) == []


@pytest.mark.parametrize(
    "url",
    [
        "redis://redis.example.test:6379/0",
        "redis://portal@redis.example.test:6379/0",
        "redis://:@redis.example.test:6379/0",
        "unix:///run/redis.sock",
    ],
)
def test_neither_tls_nor_a_password_fails(settings: Any, url: str) -> None:
    assert errors_for(settings, REDIS_URL=url) == [
        "REDIS_URL connects to Redis without TLS or a password."
    ]


@pytest.mark.parametrize("name", ["CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "KRAKEN_REDIS_URL"])
def test_every_redis_setting_is_checked(settings: Any, name: str) -> None:
    assert errors_for(settings, **{name: "redis://redis.example.test:6379/1"}) == [
        f"{name} connects to Redis without TLS or a password."
    ]


def test_a_broker_that_is_not_redis_is_not_this_checks_business(settings: Any) -> None:
    assert errors_for(settings, CELERY_BROKER_URL="amqp://guest@rabbit.example.test//") == []


def test_development_does_not_require_it(settings: Any) -> None:
    settings.REDIS_REQUIRE_SECURE = False
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    assert redis_security_check() == []


INSECURE = "{name} connects to Redis without TLS or a password."


def test_production_settings_refuse_a_plain_redis_url_at_import() -> None:
    result = run_python(
        "import django; django.setup()", production_env(REDIS_URL="redis://redis.example.test/0")
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert INSECURE.format(name="REDIS_URL") in result.stderr


def test_production_settings_refuse_a_plain_broker_beside_a_secure_redis() -> None:
    env = production_env(
        REDIS_URL=SECURE_REDIS_URL, CELERY_BROKER_URL="redis://redis.example.test:6379/1"
    )
    result = run_python(CHECK, env)
    assert result.returncode != 0
    assert INSECURE.format(name="CELERY_BROKER_URL") in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        # Two workers: uvicorn's supervisor would keep running while each worker died on import.
        ["-m", "kraken_portal.serve", "--port", "0", "--workers", "2"],
        ["-m", "celery", "-A", "kraken_portal", "worker", "--pool", "solo"],
        ["-m", "celery", "-A", "kraken_portal", "beat", "--schedule", "/tmp/portal-test-beat"],
    ],
    ids=["server", "worker", "beat"],
)
def test_the_server_worker_and_beat_do_not_start_with_a_plain_redis(command: list[str]) -> None:
    """They never run system checks: the settings themselves refuse."""
    env = production_env(REDIS_URL="redis://redis.example.test:6379/0")
    result = subprocess.run(
        [sys.executable, *command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert INSECURE.format(name="REDIS_URL") in result.stderr


def test_the_check_still_reports_a_url_set_after_the_production_settings(settings: Any) -> None:
    """A deployment's own settings module may set one (KRAKEN_REDIS_URL) after importing them."""
    assert errors_for(settings, KRAKEN_REDIS_URL="redis://redis.example.test:6379/3") == [
        INSECURE.format(name="KRAKEN_REDIS_URL")
    ]


def test_production_settings_accept_a_secure_redis() -> None:
    result = run_python(CHECK, production_env(REDIS_URL=SECURE_REDIS_URL))
    assert result.returncode == 0, result.stderr
