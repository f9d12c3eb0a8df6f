from django.apps import AppConfig


class KrakenConfig(AppConfig):
    name = "apps.kraken"
    label = "kraken"
