"""Scheduled workflows: schedules, slots, runs exactly once per slot, catch-up, and the action
registry the business apps fill.
"""

from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    name = "apps.schedules"
    label = "schedules"

    def ready(self) -> None:
        from apps.notifications.kinds import notification_kind_register
        from apps.schedules import approval_kind

        notification_kind_register(
            "schedules.run_done", "A workflow run was done", default_email=False
        )
        notification_kind_register(
            "schedules.run_nothing", "A workflow run found nothing to do", default_email=False
        )
        notification_kind_register(
            "schedules.run_failed", "A workflow run failed or was not run", default_email=True
        )
        notification_kind_register(
            "schedules.run_waiting", "A workflow run waits for approval", default_email=True
        )
        approval_kind.register()
        # Extra modules that register actions when imported (the tests' own action; a
        # deployment's plug-ins). The business apps register theirs in their own ready().
        from importlib import import_module

        from django.conf import settings

        for module in getattr(settings, "SCHEDULES_ACTION_MODULES", []):
            import_module(module)
