from django.apps import AppConfig


class GitopsConfig(AppConfig):
    name = "apps.gitops"
    label = "gitops"
    verbose_name = "GitOps adapters"

    def ready(self) -> None:
        # /readyz asks whether the GitOps remote answers (controlplane imports no app).
        from apps.core.ops import register_readiness_check
        from apps.gitops.ops import check_git

        register_readiness_check("git", check_git)
