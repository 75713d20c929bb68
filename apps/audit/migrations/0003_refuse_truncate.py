"""On PostgreSQL, refuse TRUNCATE on the audit table as well.

The append-only trigger (0002) is FOR EACH ROW, and TRUNCATE fires no row triggers: it
emptied the table in one statement. A statement-level BEFORE TRUNCATE trigger closes that.
As with 0002, a database owner can still disable triggers; the anchors (audit_verify) are
what detect an emptied table then.

A session that sets ``slipway.audit_truncate = allow`` may truncate: the test suite does
(Django empties every table between transactional tests with TRUNCATE). Any database
user can set that, so like 0002 this stops accidents, not an attacker: against those,
the anchors are the defence.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION audit_event_refuse_truncate() RETURNS trigger AS $$
BEGIN
    IF current_setting('slipway.audit_truncate', true) = 'allow' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_event_refuse_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse_truncate();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS audit_event_refuse_truncate ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_refuse_truncate();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_trigger")]
    operations = [migrations.RunPython(forward, backward)]
