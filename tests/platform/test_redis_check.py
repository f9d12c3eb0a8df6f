"""Production refuses a Redis that anyone on its network could use: every Redis URL needs TLS
(rediss://) or a password (system check core.E001)."""

from __future__ import annotations

from typing import Any

import pytest

from apps.core.checks import redis_security_check
from tests.platform.test_deploy import SECURE_REDIS_URL, production_env, run_python

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


def test_production_settings_refuse_a_plain_redis_url() -> None:
    result = run_python(CHECK, production_env(REDIS_URL="redis://redis.example.test:6379/0"))
    assert result.returncode != 0
    assert "core.E001" in result.stderr
    assert "REDIS_URL connects to Redis without TLS or a password." in result.stderr


def test_production_settings_refuse_a_plain_broker_beside_a_secure_redis() -> None:
    env = production_env(
        REDIS_URL=SECURE_REDIS_URL, CELERY_BROKER_URL="redis://redis.example.test:6379/1"
    )
    result = run_python(CHECK, env)
    assert result.returncode != 0
    assert "CELERY_BROKER_URL connects to Redis without TLS or a password." in result.stderr


def test_production_settings_accept_a_secure_redis() -> None:
    result = run_python(CHECK, production_env(REDIS_URL=SECURE_REDIS_URL))
    assert result.returncode == 0, result.stderr
