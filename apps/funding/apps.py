"""Treasury: balances, deposits, address book, four-eyes withdrawals, transfers, and the funding
workflow actions.
"""

from django.apps import AppConfig


class FundingConfig(AppConfig):
    name = "apps.funding"
    label = "funding"

    def ready(self) -> None:
        from apps.funding import kinds, workflow_actions

        kinds.register()
        # The scheduled-workflow actions (fixed withdrawal and transfer, sweep, top-up), in
        # apps.schedules' registry; and a removed destination pauses the workflows using it.
        workflow_actions.register()
