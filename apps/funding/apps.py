"""Treasury: balances, deposits, address book, four-eyes withdrawals, transfers, and the funding
workflow actions.
"""

from django.apps import AppConfig


class FundingConfig(AppConfig):
    name = "apps.funding"
    label = "funding"

    def ready(self) -> None:
        from apps.funding import kinds

        kinds.register()
