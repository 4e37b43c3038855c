"""Make the case timeline append-only in the database itself on PostgreSQL.

As for the audit log (accounts 0003): the application never updates or
deletes a timeline entry, and on PostgreSQL a trigger refuses anyone else
who tries. TRUNCATE stays with the table owner (the test runner uses it).
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION cases_caseevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the case timeline is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS cases_caseevent_no_update_delete ON cases_caseevent;
CREATE TRIGGER cases_caseevent_no_update_delete
    BEFORE UPDATE OR DELETE ON cases_caseevent
    FOR EACH ROW EXECUTE FUNCTION cases_caseevent_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS cases_caseevent_no_update_delete ON cases_caseevent;
DROP FUNCTION IF EXISTS cases_caseevent_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # params=None: the SQL has a literal "%" that must not be read as a placeholder.
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("cases", "0003_case_timeline")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
