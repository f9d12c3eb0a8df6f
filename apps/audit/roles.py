"""The database role the running portal uses, so that not even the portal can rewrite its trail.

The append-only trigger (migration 0002) stops UPDATE and DELETE, but the table's owner can
disable or drop a trigger, and TRUNCATE is not a row event at all. So the portal runs as a role
that owns nothing: it may read and write every table (normal CRUD), but on the audit records only
SELECT and INSERT, and on the chain heads SELECT, INSERT and UPDATE (appending moves the head).
Only the owner, used for `migrate`, can touch the trigger. Someone who takes over the web
process, or reads its DATABASE_URL, can add records but not change or remove one.

PostgreSQL only; SQLite (developer laptops) has no roles.
"""

from __future__ import annotations

import re

from apps.audit.models import AuditChain, AuditRecord

# Lower-case identifiers only: the name is spliced into SQL (roles cannot be bound parameters),
# so it is checked, then quoted anyway.
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
ROLE_NAME_INVALID = "A role name is 1-63 lower-case letters, digits and underscores."
ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"

# What the portal may do on each audit table; every other table gets CRUD.
AUDIT_TABLE_PRIVILEGES: dict[str, str] = {
    AuditRecord._meta.db_table: "SELECT, INSERT",
    AuditChain._meta.db_table: "SELECT, INSERT, UPDATE",
}
CRUD = "SELECT, INSERT, UPDATE, DELETE"


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def app_role_statements(*, role: str, database: str, schema: str = "public") -> list[str]:
    """The SQL, in order, that creates or corrects the portal's role. Run it as the owner.

    Idempotent: it first takes every table and sequence privilege away and grants them again,
    so running it after each `migrate` also covers new tables and leaves nothing stale.
    """
    if not ROLE_NAME.match(role):
        raise ValueError(ROLE_NAME_INVALID)
    r, s = quote(role), quote(schema)
    statements = [
        # CREATE ROLE has no IF NOT EXISTS; the block makes the script safe to run again.
        "DO $$ BEGIN\n"
        f"    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN\n"
        f"        CREATE ROLE {r} {ROLE_ATTRIBUTES};\n"
        "    END IF;\n"
        "END $$",
        # An existing role is brought back to the same attributes: a superuser or BYPASSRLS role
        # would pass every check below.
        f"ALTER ROLE {r} {ROLE_ATTRIBUTES}",
        f"GRANT CONNECT ON DATABASE {quote(database)} TO {r}",
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"REVOKE CREATE ON SCHEMA {s} FROM {r}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}",
        f"GRANT {CRUD} ON ALL TABLES IN SCHEMA {s} TO {r}",
    ]
    for table, privileges in AUDIT_TABLE_PRIVILEGES.items():
        qualified = f"{s}.{quote(table)}"
        statements += [
            f"REVOKE ALL ON {qualified} FROM {r}",
            # PUBLIC's grants reach every role, this one included.
            f"REVOKE ALL ON {qualified} FROM PUBLIC",
            f"GRANT {privileges} ON {qualified} TO {r}",
        ]
    statements += [
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {r}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
    ]
    return statements
