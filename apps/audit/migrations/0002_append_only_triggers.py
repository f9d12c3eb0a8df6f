"""Make audit records append-only in the database itself, not only by convention in Python.

PostgreSQL: a row-level trigger refuses UPDATE and DELETE (TRUNCATE is a different event, so
Django's `flush`, which transactional tests use, still empties the table). Only a superuser who
disables the trigger can change a row, and `manage.py audit_verify` catches that through the HMAC
chain.

SQLite (developer laptops only): a trigger refuses UPDATE. DELETE stays allowed there because
Django's `flush` on SQLite empties tables with DELETE, not TRUNCATE; production runs PostgreSQL.
"""

from django.db import migrations

PG_INSTALL = (
    """
CREATE OR REPLACE FUNCTION audit_auditrecord_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only: % refused on audit_auditrecord', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
""",
    """
CREATE TRIGGER audit_auditrecord_append_only
    BEFORE UPDATE OR DELETE ON audit_auditrecord
    FOR EACH ROW EXECUTE FUNCTION audit_auditrecord_refuse_change()
""",
)
PG_REMOVE = (
    "DROP TRIGGER IF EXISTS audit_auditrecord_append_only ON audit_auditrecord",
    "DROP FUNCTION IF EXISTS audit_auditrecord_refuse_change()",
)
SQLITE_INSTALL = (
    """
CREATE TRIGGER audit_auditrecord_no_update BEFORE UPDATE ON audit_auditrecord
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only: UPDATE refused on audit_auditrecord');
END
""",
)
SQLITE_REMOVE = ("DROP TRIGGER IF EXISTS audit_auditrecord_no_update",)
# Statements run one by one and without parameters, so `%` and `;` inside bodies stay literal.


def _run(schema_editor, statements):
    for statement in statements:
        schema_editor.execute(statement, params=None)


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _run(schema_editor, PG_INSTALL)
    elif vendor == "sqlite":
        _run(schema_editor, SQLITE_INSTALL)


def remove(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _run(schema_editor, PG_REMOVE)
    elif vendor == "sqlite":
        _run(schema_editor, SQLITE_REMOVE)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(install, remove, elidable=False)]
