"""The Kraken client's tuning settings exist with their documented defaults and types."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

REPO = Path(__file__).resolve().parents[2]

DEFAULTS = {
    "KRAKEN_HTTP_TIMEOUT": 10,
    "KRAKEN_READ_ATTEMPTS": 4,
    "KRAKEN_RETRY_BASE_DELAY": 0.25,
    "KRAKEN_RETRY_MAX_DELAY": 4.0,
    "KRAKEN_RATE_MAX_WAIT": 45.0,
    "KRAKEN_SEQUENCER_WAIT": 30.0,
}


def test_the_kraken_client_settings_have_their_documented_defaults() -> None:
    for name, default in DEFAULTS.items():
        if name not in os.environ:
            assert getattr(settings, name) == default, name
            assert type(getattr(settings, name)) is type(default), name


def test_the_kraken_client_settings_are_read_from_the_environment() -> None:
    code = (
        "from kraken_portal.settings import base;"
        "print(base.KRAKEN_HTTP_TIMEOUT, base.KRAKEN_RETRY_BASE_DELAY, base.KRAKEN_SEQUENCER_WAIT)"
    )
    env = {
        **os.environ,
        "KRAKEN_HTTP_TIMEOUT": "3",
        "KRAKEN_RETRY_BASE_DELAY": "0.5",
        "KRAKEN_SEQUENCER_WAIT": "7.5",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["3", "0.5", "7.5"]


def test_celery_sees_no_leftover_settings_it_would_ignore() -> None:
    assert not hasattr(settings, "CELERY_TASK_QUEUES_NAMES")
    assert not hasattr(settings, "CELERY_VISIBILITY_TIMEOUT")
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS == {"visibility_timeout": 3600}


def test_a_broker_key_prefix_from_the_environment_keeps_processes_apart() -> None:
    code = "from kraken_portal.settings import base;print(base.CELERY_BROKER_TRANSPORT_OPTIONS)"
    env = {**os.environ, "CELERY_BROKER_KEY_PREFIX": "run-1:"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "{'visibility_timeout': 3600, 'global_keyprefix': 'run-1:'}"
