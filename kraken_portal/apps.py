from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The composition layer: it wires the apps' hooks together at start-up."""

    name = "kraken_portal"

    def ready(self) -> None:
        from kraken_portal.dashboard import register

        register()
