"""``manage.py sandbox``: parse the flags and hand over to the pure-Python server."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand

from apps.sandbox.cli import add_arguments, config_from
from apps.sandbox.server import run


class Command(BaseCommand):
    help = "Run the local Kraken sandbox exchange (REST + WebSocket v2)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        ns = argparse.Namespace(**options)
        run(config_from(ns))
