"""Release API for CI pipelines and scripts. Thin: parse, call a service, serialise.
Domain errors map to 400/403/404/409 in apps.core.api.exception_handler."""

from __future__ import annotations

import re

from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from apps.accounts.models import TokenScope
from apps.core.errors import Conflict, DomainError, Forbidden
from apps.registry.models import ModelVersion
from apps.releases import permissions, selectors, services
from apps.releases.api import serializers as s
from apps.releases.models import ApprovalRule, Environment, Release, Rollout, Service

_ERRORS = {
    400: OpenApiResponse(s.ErrorSerializer, description="bad input"),
    403: OpenApiResponse(s.ErrorSerializer, description="your role does not allow this"),
    404: OpenApiResponse(s.ErrorSerializer, description="no such release"),
    409: OpenApiResponse(
        s.ErrorSerializer, description="not allowed in the release's current state"
    ),
}


def _field_error(field: str, message: str) -> DomainError:
    return DomainError(message, field_errors={field: [message]})


# Path segments are matched loosely by the router ("[^/]+") and checked here, so that an
# id like "abc" or "%C2%84" gets the API's JSON 404 instead of Django's HTML page (the
# URL resolver's 404 knows nothing about the API). Found by schemathesis, see
# tests/hardening/test_api_fuzz.py. The schema still documents the strict shapes.
_ANY_SEGMENT = "[^/]+"
_NAME = re.compile(r"[a-z0-9-]{1,63}")
_ID = re.compile(r"[0-9]{1,18}")
_NAME_PARAMETER = OpenApiParameter(
    "name", OpenApiTypes.STR, OpenApiParameter.PATH, pattern=f"^{_NAME.pattern}$"
)
_ID_PARAMETER = OpenApiParameter(
    "id", OpenApiTypes.INT, OpenApiParameter.PATH, description="release id"
)


class _NamedLookup:
    """get_object for viewsets looked up by a DNS-1123 name: anything else is a 404."""

    def get_object(self):
        value = self.kwargs.get(self.lookup_field, "")
        if not _NAME.fullmatch(value):
            raise NotFound(f"No {self.basename} named {value[:63]!r}.")
        return super().get_object()


@extend_schema_view(
    list=extend_schema(
        summary="List services", responses={200: s.ServiceSerializer(many=True), 400: _ERRORS[400]}
    ),
    retrieve=extend_schema(
        summary="One service",
        parameters=[_NAME_PARAMETER],
        responses={200: s.ServiceSerializer, 404: OpenApiResponse(s.ErrorSerializer)},
    ),
)
class ServiceViewSet(_NamedLookup, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.ServiceSerializer
    queryset = Service.objects.select_related("owner_team").order_by("name")
    lookup_field = "name"
    lookup_value_regex = _ANY_SEGMENT


@extend_schema_view(
    list=extend_schema(
        summary="List environments and their approval policies",
        responses={200: s.EnvironmentSerializer(many=True), 400: _ERRORS[400]},
    ),
    retrieve=extend_schema(
        summary="One environment",
        parameters=[_NAME_PARAMETER],
        responses={200: s.EnvironmentSerializer, 404: OpenApiResponse(s.ErrorSerializer)},
    ),
)
class EnvironmentViewSet(_NamedLookup, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.EnvironmentSerializer
    queryset = (
        Environment.objects.select_related("promotes_from")
        .prefetch_related(
            Prefetch("approval_rules", queryset=ApprovalRule.objects.order_by("role"))
        )
        .order_by("order", "name")
    )
    lookup_field = "name"
    lookup_value_regex = _ANY_SEGMENT


_RELEASE_FILTERS = [
    OpenApiParameter("service", str, description="service name", pattern=s.NAME_FILTER),
    OpenApiParameter("environment", str, description="environment name", pattern=s.NAME_FILTER),
    # "" (the parameter sent empty) means any, as for the name filters: the serializer
    # accepts it, so the schema says so (found by schemathesis once `team` was added).
    OpenApiParameter(
        "state", str, enum=["", *(c[0] for c in Release._meta.get_field("state").choices)]
    ),
    OpenApiParameter(
        "kind", str, enum=["", *(c[0] for c in Release._meta.get_field("kind").choices)]
    ),
    OpenApiParameter("team", str, description="owning team's slug", pattern=s.NAME_FILTER),
]


class ReleaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_value_regex = _ANY_SEGMENT
    # API token scope per action (apps.accounts.permissions); other writes: release:write.
    token_scopes = {"promote": TokenScope.PROMOTE, "rollback": TokenScope.ROLLBACK}

    def get_queryset(self):
        if self.action == "list":
            # Unknown states or kinds are a 400, not an empty list that looks like
            # "nothing there" (found by schemathesis: ?state=AAA answered 200).
            filters = s.ReleaseFilterSerializer(data=self.request.query_params)
            filters.is_valid(raise_exception=True)
            return selectors.release_list(**filters.validated_data)
        return selectors.release_detail_queryset()

    def get_serializer_class(self):
        return s.ReleaseListSerializer if self.action == "list" else s.ReleaseSerializer

    def get_object(self):
        return self._release(self.kwargs.get(self.lookup_url_kwarg or self.lookup_field))

    def _release(self, pk) -> Release:
        release = None
        if isinstance(pk, str) and _ID.fullmatch(pk):
            release = selectors.release_detail_queryset().filter(pk=int(pk)).first()
        if release is None:
            raise NotFound(f"No release #{str(pk)[:18]}.")
        return release

    def _answer(self, release: Release, code=status.HTTP_200_OK) -> Response:
        fresh = selectors.release_detail_queryset().get(pk=release.pk)
        return Response(s.ReleaseSerializer(fresh).data, status=code)

    @extend_schema(
        summary="List releases, newest first",
        parameters=_RELEASE_FILTERS,
        responses={200: s.ReleaseListSerializer(many=True), 400: _ERRORS[400]},
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="One release with its approvals and policy progress",
        parameters=[_ID_PARAMETER],
        responses={200: s.ReleaseSerializer, 404: _ERRORS[404]},
    )
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Create a draft release",
        description="Send the same Idempotency-Key again to get the same release back (200) "
        "instead of a second one; a different body with a used key is a 409.",
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
        request=s.ReleaseCreateSerializer,
        responses={201: s.ReleaseSerializer, 200: s.ReleaseSerializer, **_ERRORS},
    )
    def create(self, request):
        data = _valid(s.ReleaseCreateSerializer, request)
        key = _idempotency_key(request)
        service = Service.objects.filter(name=data["service"]).first()
        if service is None:
            raise _field_error("service", f"No service named {data['service']!r}.")
        environment = Environment.objects.filter(name=data["environment"]).first()
        if environment is None:
            raise _field_error("environment", f"No environment named {data['environment']!r}.")
        model_version = ModelVersion.objects.filter(
            name=service.registered_model, version=data["model_version"]
        ).first()
        if model_version is None:
            raise _field_error(
                "model_version",
                f"{service.registered_model!r} has no version {data['model_version']} in "
                "Slipway's registry mirror; check the version in MLflow or refresh the service.",
            )
        release, created = services.release_create(
            actor=request.user,
            service=service,
            environment=environment,
            model_version=model_version,
            config_overrides=data["config_overrides"],
            reason=data["reason"],
            idempotency_key=key,
            rollout=data["rollout"],
        )
        return self._answer(release, status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        summary="Submit a draft for approval",
        parameters=[_ID_PARAMETER],
        request=None,
        responses={200: s.ReleaseSerializer, **_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        return self._answer(services.release_submit(actor=request.user, release=self._release(pk)))

    @extend_schema(
        summary="Approve, as one of your reviewer roles",
        parameters=[_ID_PARAMETER],
        request=s.ApproveSerializer,
        responses={200: s.ReleaseSerializer, **_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        release = self._release(pk)
        data = _valid(s.ApproveSerializer, request)
        return self._answer(services.release_approve(actor=request.user, release=release, **data))

    @extend_schema(
        summary="Reject, with a comment",
        parameters=[_ID_PARAMETER],
        request=s.RejectSerializer,
        responses={200: s.ReleaseSerializer, **_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        release = self._release(pk)
        data = _valid(s.RejectSerializer, request)
        return self._answer(services.release_reject(actor=request.user, release=release, **data))

    @extend_schema(
        summary="Cancel a release that has not started deploying",
        parameters=[_ID_PARAMETER],
        request=s.ReasonSerializer,
        responses={200: s.ReleaseSerializer, **_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        release = self._release(pk)
        data = _valid(s.ReasonSerializer, request)
        return self._answer(services.release_cancel(actor=request.user, release=release, **data))

    @extend_schema(
        summary="Request promotion of this live release to the next environment",
        parameters=[
            _ID_PARAMETER,
            OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER),
        ],
        request=s.PromoteSerializer,
        responses={201: s.ReleaseSerializer, 200: s.ReleaseSerializer, **_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None):
        source = self._release(pk)
        data = _valid(s.PromoteSerializer, request)
        key = _idempotency_key(request)
        environment = None
        if data["environment"]:
            environment = Environment.objects.filter(name=data["environment"]).first()
            if environment is None:
                raise _field_error("environment", f"No environment named {data['environment']!r}.")
        promotion, created = services.release_promote(
            actor=request.user,
            source=source,
            environment=environment,
            reason=data["reason"],
            idempotency_key=key,
            break_glass=data["break_glass"],
        )
        return self._answer(promotion, status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        summary="Break glass: let this release through its environment's freeze",
        description="On-call or admin, with a reason (audited). For a release not yet "
        "deploying; approvals are still needed. A release held at the commit goes out now.",
        parameters=[_ID_PARAMETER],
        request=s.FreezeOverrideRequestSerializer,
        responses={200: s.ReleaseSerializer, **_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="freeze-override")
    def freeze_override(self, request, pk=None):
        release = self._release(pk)
        data = _valid(s.FreezeOverrideRequestSerializer, request)
        return self._answer(
            services.release_freeze_override(
                actor=request.user, release=release, reason=data["reason"]
            )
        )

    @extend_schema(
        summary="Roll back this live release (on-call, break-glass with a reason)",
        parameters=[_ID_PARAMETER],
        request=s.RollbackSerializer,
        responses={201: s.ReleaseSerializer, **_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        live = self._release(pk)
        data = _valid(s.RollbackSerializer, request)
        target = None
        if data["target"]:
            target = Release.objects.filter(pk=data["target"]).first()
            if target is None:
                raise _field_error("target", f"No release #{data['target']}.")
        rollback = services.release_rollback(
            actor=request.user,
            service=live.service,
            environment=live.environment,
            reason=data["reason"],
            target=target,
            expected_live=live,
        )
        return self._answer(rollback, status.HTTP_201_CREATED)

    # --- people in the loop of a progressive rollout ------------------------------------
    # Each action is idempotent in itself (pausing a paused rollout, a second abort, a
    # second promote-now answer 200 with the same state), so a retried request with the
    # same Idempotency-Key, or two people at once, make one decision and one commit.

    def _rollout_action(self, request, pk, act, action: str):
        release = self._release(pk)
        if not permissions.can_steer_rollout(request.user, action):
            raise Forbidden(f"Your role does not allow this rollout action ({action}).")
        _idempotency_key(request)  # checked like every endpoint that takes one
        data = _valid(s.RolloutActionSerializer, request)
        rollout = Rollout.objects.filter(release=release).first()
        if rollout is None:
            raise Conflict(
                f"Release #{release.pk} has no rollout under way"
                + ("" if release.is_progressive else " (it goes out all-at-once)")
                + "."
            )
        act(rollout=rollout, actor=request.user, reason=data["reason"])
        return self._answer(release)

    @extend_schema(
        summary="Pause the rollout: the traffic stays where it is (ML engineers)",
        parameters=[_ID_PARAMETER],
        request=s.RolloutActionSerializer,
        responses={200: s.ReleaseSerializer, **_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="rollout/pause")
    def rollout_pause(self, request, pk=None):
        return self._rollout_action(request, pk, services.rollout_pause, "pause")

    @extend_schema(
        summary="Resume a paused rollout (ML engineers)",
        parameters=[_ID_PARAMETER],
        request=s.RolloutActionSerializer,
        responses={200: s.ReleaseSerializer, **_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="rollout/resume")
    def rollout_resume(self, request, pk=None):
        return self._rollout_action(
            request,
            pk,
            lambda *, rollout, actor, reason: services.rollout_resume(rollout=rollout, actor=actor),
            "resume",
        )

    @extend_schema(
        summary="Abort the rollout: the stable release back at 100%, the candidate held "
        "(on-call, break-glass with a reason)",
        parameters=[_ID_PARAMETER],
        request=s.RolloutActionSerializer,
        responses={200: s.ReleaseSerializer, **_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="rollout/abort")
    def rollout_abort(self, request, pk=None):
        return self._rollout_action(request, pk, services.rollout_abort, "abort")

    @extend_schema(
        summary="Promote now: skip the remaining steps (on-call, with a reason)",
        parameters=[_ID_PARAMETER],
        request=s.RolloutActionSerializer,
        responses={200: s.ReleaseSerializer, **_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="rollout/promote")
    def rollout_promote(self, request, pk=None):
        return self._rollout_action(request, pk, services.rollout_promote_now, "promote")

    @extend_schema(
        summary="Lift the hold on an aborted candidate, with a reason",
        parameters=[_ID_PARAMETER],
        request=s.RolloutActionSerializer,
        responses={200: s.ReleaseSerializer, **_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="rollout/lift-hold")
    def rollout_lift_hold(self, request, pk=None):
        return self._rollout_action(request, pk, services.rollout_lift_hold, "lift-hold")

    # --- shadow evaluation of a release waiting for approval ----------------------------
    # Idempotent like the rollout actions: a second start while this release's evaluation
    # runs answers 200 with it (one commit), a second stop answers 200 too.

    @extend_schema(
        summary="Start a shadow evaluation of this release waiting for approval (ML "
        "engineers of the service's team)",
        description="The candidate receives a mirrored share of the environment's live "
        "requests (answers recorded, never returned); after the observe window the report "
        "is stored with the release. 201 when started, 200 when this release's evaluation "
        "already runs; 409 during a freeze, while a deploy or rollout of the target is under "
        "way, or while another release's evaluation runs there (naming it).",
        parameters=[
            _ID_PARAMETER,
            OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER),
        ],
        request=s.RolloutActionSerializer,
        responses={201: s.ReleaseSerializer, 200: s.ReleaseSerializer, **_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="shadow-evaluation")
    def shadow_evaluation_start(self, request, pk=None):
        release = self._release(pk)
        _idempotency_key(request)  # checked like every endpoint that takes one
        data = _valid(s.RolloutActionSerializer, request)
        _, created = services.shadow_evaluation_start(
            release=release, actor=request.user, reason=data["reason"]
        )
        return self._answer(release, status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        summary="Stop the running shadow evaluation: the live release's own files go back "
        "(ML engineers of the service's team)",
        parameters=[
            _ID_PARAMETER,
            OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER),
        ],
        request=s.RolloutActionSerializer,
        responses={200: s.ReleaseSerializer, **_ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="shadow-evaluation/stop")
    def shadow_evaluation_stop(self, request, pk=None):
        release = self._release(pk)
        _idempotency_key(request)
        data = _valid(s.RolloutActionSerializer, request)
        services.shadow_evaluation_stop(release=release, actor=request.user, reason=data["reason"])
        return self._answer(release)


_KEY_MAX = Release._meta.get_field("idempotency_key").max_length


def _idempotency_key(request) -> str | None:
    """The Idempotency-Key header, bounded by the column that stores it: one check for
    every endpoint that takes a key (a 200-character key on promote was a 500)."""
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and (len(key) > _KEY_MAX or not key.isprintable()):
        raise _field_error(
            "Idempotency-Key", f"Idempotency-Key must be 1-{_KEY_MAX} printable characters."
        )
    return key


def _valid(serializer_class, request) -> dict:
    if not isinstance(request.data, dict):
        raise DomainError("The request body must be a JSON object.")
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
