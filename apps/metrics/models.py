"""Metric samples, their roll-ups, SLO state and events, source health, guard decisions.

Samples are the raw readings of one poll: one row per (target, metric, poll). They are
kept ``METRICS_RAW_RETENTION_DAYS`` and rolled up into 5-minute and 1-hour buckets that
long-range charts read. ``MetricLatest`` holds the newest value of each metric per target
so the fleet overview reads one small table instead of searching the big one.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.metrics.catalog import Metric

# Foreign keys on the sample tables carry no index of their own (Django adds one per
# foreign key by default): the composite indexes below start with them, and every extra
# index costs on each of the thousands of rows a poll writes.


class MetricSample(models.Model):
    """One reading: ``metric`` of ``service`` in ``environment`` at ``time``.

    The foreign keys have no database constraint (``db_constraint=False``): a poll
    appends tens of thousands of samples, and PostgreSQL checks Django's deferred
    constraints at commit, one lookup and ``FOR KEY SHARE`` row lock per key per row
    (about a third of a 10,000-service poll, and lock traffic on every live release).
    The poll writes only ids it has just read in the same transaction, and deleting a
    service, environment or release still cascades through Django (``on_delete``)."""

    id = models.BigAutoField(primary_key=True)
    service = models.ForeignKey(
        "releases.Service",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    environment = models.ForeignKey(
        "releases.Environment",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    release = models.ForeignKey(
        "releases.Release",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
        help_text="the release live at poll time",
    )
    metric = models.CharField(max_length=32, choices=Metric.choices)
    time = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        indexes = [
            # Charts and the SLO panel: one target, one metric, a time range.
            models.Index(
                fields=["service", "environment", "metric", "time"], name="metricsample_series"
            ),
            # Release evidence (the release page): one release, per metric, over its life.
            models.Index(fields=["release", "metric", "time"], name="metricsample_release"),
            # Roll-ups and retention: everything in a time range.
            models.Index(fields=["time"], name="metricsample_time"),
        ]

    def __str__(self) -> str:
        return f"{self.metric}={self.value:g} @ {self.time:%Y-%m-%d %H:%M:%S}"


class MetricLatest(models.Model):
    """The newest value of one metric for one target; upserted by every poll."""

    service = models.ForeignKey(
        "releases.Service", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    environment = models.ForeignKey(
        "releases.Environment", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    release = models.ForeignKey(
        "releases.Release", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    metric = models.CharField(max_length=32, choices=Metric.choices)
    time = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment", "metric"], name="metriclatest_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"latest {self.metric}={self.value:g}"


class Resolution(models.IntegerChoices):
    FIVE_MINUTES = 300, "5 minutes"
    ONE_HOUR = 3600, "1 hour"


class MetricRollup(models.Model):
    """Samples of one series aggregated over a bucket of ``resolution`` seconds."""

    id = models.BigAutoField(primary_key=True)
    service = models.ForeignKey(
        "releases.Service", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    environment = models.ForeignKey(
        "releases.Environment", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    metric = models.CharField(max_length=32, choices=Metric.choices)
    resolution = models.PositiveIntegerField(choices=Resolution.choices)
    bucket_start = models.DateTimeField()
    min = models.FloatField()
    max = models.FloatField()
    sum = models.FloatField()
    count = models.PositiveIntegerField()
    last = models.FloatField(help_text="the newest sample in the bucket")

    class Meta:
        constraints = [
            # Also the index the charts read: one series, one resolution, a time range.
            models.UniqueConstraint(
                fields=["service", "environment", "metric", "resolution", "bucket_start"],
                name="metricrollup_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["resolution", "bucket_start"], name="metricrollup_time"),
        ]

    def __str__(self) -> str:
        return f"{self.metric} {self.resolution}s @ {self.bucket_start:%Y-%m-%d %H:%M}"

    @property
    def avg(self) -> float:
        return self.sum / self.count if self.count else 0.0


class SourceHealth(models.Model):
    """How one metric source is doing: the poll's bookkeeping, and the stale banner's."""

    source = models.CharField(max_length=32, unique=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    configuration_error = models.BooleanField(
        default=False, help_text="the last failure was Slipway's configuration, not the source"
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="backing off: not asked again before this"
    )
    last_readings = models.PositiveIntegerField(default=0)
    last_requests = models.PositiveIntegerField(
        default=0, help_text="HTTP requests the source sent in its last attempt"
    )

    class Meta:
        ordering = ["source"]

    def __str__(self) -> str:
        return self.source

    def is_stale(self, *, now=None, stale_after: timedelta) -> bool:
        now = now or timezone.now()
        return (
            self.consecutive_failures > 0
            or self.last_success_at is None
            or now - self.last_success_at > stale_after
        )


class SloState(models.Model):
    """Where one SLO of one target stands: the streak of bad (or good) polls, breached?"""

    service = models.ForeignKey(
        "releases.Service", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    environment = models.ForeignKey(
        "releases.Environment", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    metric = models.CharField(max_length=32, choices=Metric.choices)
    release = models.ForeignKey(
        "releases.Release",
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="the live release the streaks belong to; a new release starts them over",
    )
    threshold = models.FloatField(null=True)
    last_value = models.FloatField(null=True)
    last_evaluated_at = models.DateTimeField(null=True)
    consecutive_bad = models.PositiveIntegerField(default=0)
    consecutive_good = models.PositiveIntegerField(default=0)
    streak_since = models.DateTimeField(
        null=True, help_text="first poll of the current streak (bad or good)"
    )
    in_breach = models.BooleanField(default=False)
    breach_started_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["service", "environment", "metric"], name="slostate_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"SLO {self.metric} ({'breach' if self.in_breach else 'ok'})"


class SloEventKind(models.TextChoices):
    BREACH = "breach", "Breach"
    RECOVERY = "recovery", "Recovery"


class SloEvent(models.Model):
    """A breach (K bad polls in a row) or a recovery, as the release page shows it."""

    service = models.ForeignKey("releases.Service", on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey(
        "releases.Environment", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    release = models.ForeignKey(
        "releases.Release", null=True, on_delete=models.SET_NULL, related_name="slo_events"
    )
    metric = models.CharField(max_length=32, choices=Metric.choices)
    kind = models.CharField(max_length=16, choices=SloEventKind.choices)
    value = models.FloatField()
    threshold = models.FloatField()
    polls = models.PositiveIntegerField(help_text="consecutive polls behind the event")
    started_at = models.DateTimeField(help_text="first poll of the streak")
    time = models.DateTimeField(help_text="the poll that completed the streak")

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [models.Index(fields=["environment", "service", "time"], name="sloevent_target")]

    def __str__(self) -> str:
        return f"{self.kind} {self.metric}={self.value:g} (SLO {self.threshold:g})"


class GuardOutcome(models.TextChoices):
    ROLLED_BACK = "rolled_back", "Rolled back"
    SKIPPED_ROLLBACK = "skipped_rollback", "Not rolled back: it is itself a rollback"
    HELD_UNKNOWN_PREVIOUS = "held_unknown_previous", "Held: no earlier good release known"
    REFUSED = "refused", "Refused by the release workflow"


class GuardDecision(models.Model):
    """What the auto-rollback guard decided about one release; at most one per release,
    so the guard can never act twice on the same release."""

    release = models.OneToOneField(
        "releases.Release", on_delete=models.CASCADE, related_name="guard_decision"
    )
    outcome = models.CharField(max_length=32, choices=GuardOutcome.choices)
    metric = models.CharField(max_length=32, choices=Metric.choices)
    value = models.FloatField()
    threshold = models.FloatField()
    reason = models.TextField()
    rollback = models.ForeignKey(
        "releases.Release",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="the rollback release the guard created",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome="rolled_back", rollback__isnull=False)
                | ~Q(outcome="rolled_back"),
                name="guard_rollback_has_release",
            ),
        ]

    def __str__(self) -> str:
        return f"guard on #{self.release_id}: {self.outcome}"
