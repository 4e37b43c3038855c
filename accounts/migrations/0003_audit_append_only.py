"""Make the audit log append-only in the database itself on PostgreSQL.

The application offers no update or delete of audit entries; this trigger
makes sure nothing else (a shell, a bad migration, a compromised process with
the application's credentials) can rewrite history either. SQLite has no
equivalent that survives ``DROP TRIGGER``, so there the guarantee is the
application's. TRUNCATE is left to the table owner (the test runner empties
tables with it); run the application as a role without TRUNCATE privilege.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION accounts_auditentry_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS accounts_auditentry_no_update_delete ON accounts_auditentry;
CREATE TRIGGER accounts_auditentry_no_update_delete
    BEFORE UPDATE OR DELETE ON accounts_auditentry
    FOR EACH ROW EXECUTE FUNCTION accounts_auditentry_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS accounts_auditentry_no_update_delete ON accounts_auditentry;
DROP FUNCTION IF EXISTS accounts_auditentry_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # params=None: the SQL has a literal "%" that must not be read as a placeholder.
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_organisation_tokens_audit")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
