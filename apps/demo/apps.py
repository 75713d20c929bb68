from django.apps import AppConfig


class DemoConfig(AppConfig):
    """`make demo`: seed data and the process runner. Nothing imports this app."""

    name = "apps.demo"
    label = "demo"
