from django.apps import AppConfig


class RanksConfig(AppConfig):
    name = "ranks"
