"""Kraken sandbox: a local, protocol-faithful Kraken SPOT exchange (REST + WS v2).

Pure Python + aiohttp. Imports nothing from the portal; the Django management command in
``management/commands/sandbox.py`` is the only Django touch point.
"""
