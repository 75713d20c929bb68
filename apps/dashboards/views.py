from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.releases import selectors


@login_required
@require_GET
def fleet(request):
    """Every service in every environment: what is live."""
    live = selectors.live_releases_by_target()
    environments = list(selectors.environment_list())
    rows = [
        (service, [(env, live.get((service.pk, env.pk))) for env in environments])
        for service in selectors.service_list()
    ]
    return render(
        request,
        "dashboards/fleet.html",
        {"nav": "fleet", "rows": rows, "environments": environments},
    )
