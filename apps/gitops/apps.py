from django.apps import AppConfig


class GitopsConfig(AppConfig):
    name = "apps.gitops"
    label = "gitops"
    verbose_name = "GitOps adapters"
