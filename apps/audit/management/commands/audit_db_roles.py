"""`manage.py audit_db_roles --role NAME [--password-env VAR] [--print-sql]`.

Creates (or prints the SQL for) the PostgreSQL role the running portal connects as; see
apps/audit/roles.py for what it may do and why. Run it as the database owner, after `migrate`.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from apps.audit.models import AuditRecord
from apps.audit.roles import ROLE_NAME, ROLE_NAME_INVALID, app_role_statements, quote

POSTGRESQL_ONLY = "Database roles exist only on PostgreSQL; this database is {vendor}."
NOT_THE_OWNER = (
    "Connected as {user!r}, but the audit tables belong to {owner!r}: run this with the owner's "
    "DATABASE_URL (the one `migrate` uses)."
)
ROLE_IS_OWNER = (
    "The portal's role must not be the owner ({owner!r}) nor the role running this command."
)
ENV_VARIABLE_UNSET = "The environment variable {name} named by --password-env is not set."
ROLE_TOO_STRONG = "Role {role!r} could still {what}; nothing was changed."

# Privileges the portal's role must not end up with on the audit records.
FORBIDDEN_ON_RECORDS = ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES")


class Command(BaseCommand):
    help = (
        "Create or update the PostgreSQL role the running portal uses: CRUD on every table, but "
        "only SELECT and INSERT on audit records (and SELECT, INSERT, UPDATE on chain heads), so "
        "the portal cannot change, delete or truncate its audit trail nor touch the append-only "
        "trigger. Run as the owner, after every `migrate`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", default="portal_app", help="Role name (default portal_app).")
        parser.add_argument(
            "--password-env",
            metavar="VAR",
            help="Set the role's password from this environment variable (never printed).",
        )
        parser.add_argument(
            "--print-sql",
            action="store_true",
            help="Print the SQL instead of running it (for a DBA to run as the owner).",
        )
        parser.add_argument("--schema", default="public", help="Schema of the portal's tables.")

    def handle(self, *args: Any, **options: Any) -> None:
        role: str = options["role"]
        if not ROLE_NAME.match(role):
            raise CommandError(ROLE_NAME_INVALID)
        statements = app_role_statements(
            role=role, database=str(connection.settings_dict["NAME"]), schema=options["schema"]
        )
        if options["print_sql"]:
            self.stdout.write(f"-- The portal's database role {role!r}. Run as the owner.")
            for statement in statements:
                self.stdout.write(statement + ";")
            self.stdout.write(f"-- Then set its password, e.g. in psql: \\password {role}")
            return
        if connection.vendor != "postgresql":
            raise CommandError(POSTGRESQL_ONLY.format(vendor=connection.vendor))
        password = None
        if options["password_env"]:
            password = os.environ.get(options["password_env"])
            if password is None:
                raise CommandError(ENV_VARIABLE_UNSET.format(name=options["password_env"]))
        with transaction.atomic(durable=True), connection.cursor() as cursor:
            owner = self._check_runner(cursor, role=role, schema=options["schema"])
            for statement in statements:
                cursor.execute(statement)
            if password is not None:
                # Only the SCRAM-SHA-256 verifier goes to the server, as psql's \password does:
                # the statement's text may be logged (log_statement = ddl) and must not carry
                # the password. libpq computes it (PQencryptPasswordConn, with SASLprep).
                verifier = connection.connection.pgconn.encrypt_password(
                    password.encode(), role.encode(), b"scram-sha-256"
                )
                cursor.execute(f"ALTER ROLE {quote(role)} PASSWORD %s", [verifier.decode()])
            self._check_result(cursor, role=role, owner=owner)
        self.stdout.write(
            f"Role {role!r}: CRUD on every table; audit records SELECT, INSERT only; chain heads "
            "SELECT, INSERT, UPDATE. Point the portal's DATABASE_URL at it; keep the owner for "
            "`migrate`."
        )

    def _check_runner(self, cursor: Any, *, role: str, schema: str) -> str:
        cursor.execute(
            "SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
            "(SELECT tableowner FROM pg_tables WHERE tablename = %s AND schemaname = %s)",
            [AuditRecord._meta.db_table, schema],
        )
        user, superuser, owner = cursor.fetchone()
        if owner is None:
            raise CommandError("The audit tables do not exist yet: run `migrate` first.")
        if user != owner and not superuser:
            raise CommandError(NOT_THE_OWNER.format(user=user, owner=owner))
        if role in {user, owner}:
            raise CommandError(ROLE_IS_OWNER.format(owner=owner))
        return str(owner)

    def _check_result(self, cursor: Any, *, role: str, owner: str) -> None:
        """Prove the outcome before committing; a stronger role than intended rolls back."""
        table = AuditRecord._meta.db_table
        cursor.execute(
            "SELECT rolsuper OR rolbypassrls, pg_has_role(%s, %s, 'MEMBER') "
            "FROM pg_roles WHERE rolname = %s",
            [role, owner, role],
        )
        superuser, member_of_owner = cursor.fetchone()
        if superuser:
            raise CommandError(ROLE_TOO_STRONG.format(role=role, what="bypass every privilege"))
        if member_of_owner:
            raise CommandError(ROLE_TOO_STRONG.format(role=role, what=f"act as {owner!r}"))
        for privilege in FORBIDDEN_ON_RECORDS:
            cursor.execute("SELECT has_table_privilege(%s, %s, %s)", [role, table, privilege])
            if cursor.fetchone()[0]:
                what = f"{privilege} {table} (through PUBLIC or a role it belongs to)"
                raise CommandError(ROLE_TOO_STRONG.format(role=role, what=what))
