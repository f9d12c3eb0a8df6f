from django.apps import AppConfig


class StakingConfig(AppConfig):
    name = "apps.staking"
    label = "staking"
