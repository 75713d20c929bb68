from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One action somebody (or something) took. Append-only and hash-chained.

    ``hash`` is an HMAC over the previous row's hash and this row's content, keyed with
    AUDIT_CHAIN_KEY (not stored in the database). Editing, inserting or deleting a row in
    the middle breaks the chain at that row; ``manage.py audit_verify`` names it.
    On PostgreSQL a trigger also refuses UPDATE and DELETE on this table.
    """

    created_at = models.DateTimeField(db_index=True)
    # PROTECT: users are deactivated, never deleted, so who-did-what stays answerable.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    actor_label = models.CharField(max_length=150, help_text="username, or system:<name>")
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target}"

    @property
    def target(self) -> str:
        return f"{self.target_type}:{self.target_id}"


class ChainStatus(models.Model):
    """The last verification of the chain, so the audit page can show it without walking
    the whole table on every view. One row (pk 1), overwritten by each verification.

    Only a display cache: ``audit_verify`` is the proof, since whoever can tamper with the
    audit table can also write here.
    """

    checked_at = models.DateTimeField()
    intact = models.BooleanField()
    events = models.PositiveIntegerField(default=0)
    message = models.TextField()
    proven_to_id = models.BigIntegerField(null=True, blank=True)
    proven_by = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return self.message
