from django.apps import AppConfig


class ExchangeConfig(AppConfig):
    name = "apps.exchange"
    label = "exchange"
    verbose_name = "Exchange operations"

    def ready(self) -> None:
        from apps.exchange.tasks import credential_check_enqueue
        from apps.vault.hooks import key_check_register

        # The vault keeps keys and what a check found; asking Kraken is exchange's.
        key_check_register(credential_check_enqueue)
