"""`manage.py audit_db_roles`: the portal's own database role cannot rewrite the audit trail.

Each test creates a real PostgreSQL role with a unique name (roles are cluster-wide, shared by
every test database on the server) and drops it afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditRecord
from apps.audit.services import audit_record
from apps.orgs.models import Organization

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="roles are PostgreSQL's"),
]
REPO = Path(__file__).resolve().parents[2]
RECORDS = AuditRecord._meta.db_table


@dataclass(frozen=True)
class Role:
    name: str
    password: str

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        settings = connection.settings_dict
        return psycopg.connect(
            host=settings["HOST"] or "127.0.0.1",
            port=int(settings["PORT"] or 5432),
            dbname=settings["NAME"],
            user=self.name,
            password=self.password,
            autocommit=True,
        )

    def database_url(self) -> str:
        settings = connection.settings_dict
        return (
            f"postgres://{self.name}:{self.password}@{settings['HOST'] or '127.0.0.1'}:"
            f"{settings['PORT'] or 5432}/{settings['NAME']}"
        )


def _drop(name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
        if cursor.fetchone() is None:
            return
        # Privileges in this database and on the database itself go with DROP OWNED.
        cursor.execute(f'DROP OWNED BY "{name}"')
        cursor.execute(f'DROP ROLE "{name}"')


@pytest.fixture
def role_name() -> Iterator[str]:
    name = f"portal_app_test_{secrets.token_hex(6)}"
    yield name
    _drop(name)


@pytest.fixture
def app_role(role_name: str, monkeypatch: pytest.MonkeyPatch) -> Role:
    password = secrets.token_urlsafe(24)
    monkeypatch.setenv("TEST_APP_DB_PASSWORD", password)
    out = io.StringIO()
    call_command(
        "audit_db_roles", "--role", role_name, "--password-env", "TEST_APP_DB_PASSWORD", stdout=out
    )
    assert f"Role {role_name!r}" in out.getvalue()
    assert password not in out.getvalue()
    return Role(role_name, password)


def test_the_password_reaches_the_server_only_as_a_scram_verifier(
    role_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = secrets.token_urlsafe(24)
    monkeypatch.setenv("TEST_APP_DB_PASSWORD", password)
    with CaptureQueriesContext(connection) as sent:
        call_command(
            "audit_db_roles",
            "--role",
            role_name,
            "--password-env",
            "TEST_APP_DB_PASSWORD",
            stdout=io.StringIO(),
        )
    # A server with log_statement = ddl logs these statements: none holds the password.
    assert sent.captured_queries
    assert not [q for q in sent.captured_queries if password in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [role_name])
        (stored,) = cursor.fetchone()
    # What the server checks a SCRAM login against (RFC 5802/7677), recomputed here with
    # hashlib rather than libpq: the password the command was given is the one that works.
    # (This server trusts local connections, so a login alone would prove nothing.)
    scheme, rest = stored.split("$", 1)
    params, keys = rest.split("$")
    iterations, salt = params.split(":")
    stored_key, server_key = keys.split(":")
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    assert scheme == "SCRAM-SHA-256"
    assert base64.b64decode(stored_key) == hashlib.sha256(client_key).digest()
    assert base64.b64decode(server_key) == hmac.new(salted, b"Server Key", "sha256").digest()
    with Role(role_name, password).connect() as conn:
        assert conn.execute("SELECT current_user").fetchone() == (role_name,)


@pytest.fixture
def trail(owner) -> list[AuditRecord]:
    return [audit_record(action=f"test.step{i}", actor=owner) for i in range(1, 4)]


def refused(role: Role, statement: str) -> str:
    """Run one statement as the role; return PostgreSQL's refusal (the test fails if none)."""
    with role.connect() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as excinfo:
        conn.execute(statement)
    return str(excinfo.value)


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("UPDATE audit_auditrecord SET action = 'test.innocent'", "permission denied for table"),
        ("DELETE FROM audit_auditrecord", "permission denied for table"),
        ("TRUNCATE audit_auditrecord", "permission denied for table"),
        ("ALTER TABLE audit_auditrecord DISABLE TRIGGER USER", "must be owner of table"),
        (
            "ALTER TABLE audit_auditrecord DISABLE TRIGGER audit_auditrecord_append_only",
            "must be owner of table",
        ),
        ("DROP TRIGGER audit_auditrecord_append_only ON audit_auditrecord", "must be owner of"),
        ("DROP TABLE audit_auditrecord", "must be owner of table"),
        # Replica mode skips ordinary triggers; only a superuser may switch to it.
        ("SET session_replication_role = replica", "permission denied"),
        (
            "CREATE OR REPLACE FUNCTION audit_auditrecord_refuse_change() RETURNS trigger "
            "AS $$ BEGIN RETURN NEW; END; $$ LANGUAGE plpgsql",
            "permission denied for schema",  # it cannot create anything at all
        ),
        ("DELETE FROM audit_auditchain", "permission denied for table"),
    ],
    ids=[
        "update",
        "delete",
        "truncate",
        "disable-triggers",
        "disable-the-trigger",
        "drop-trigger",
        "drop-table",
        "replica-mode",
        "replace-function",
        "delete-chain-heads",
    ],
)
def test_the_portal_role_cannot_change_or_remove_audit_records(
    app_role: Role, trail: list[AuditRecord], statement: str, refusal: str
) -> None:
    assert refusal in refused(app_role, statement)
    assert AuditRecord.objects.count() == len(trail)
    assert list(AuditRecord.objects.order_by("seq").values_list("action", flat=True)) == [
        "test.step1",
        "test.step2",
        "test.step3",
    ]


def test_the_append_only_trigger_is_in_place(db) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = 'audit_auditrecord_append_only'"
        )
        assert cursor.fetchone() == ("O",)  # enabled (fires in origin mode)


AS_THE_PORTAL = """
import json, django
django.setup()
from django.contrib.sessions.backends.db import SessionStore
from apps.audit.selectors import audit_chains_verify
from apps.audit.services import audit_record
from apps.orgs.models import Organization

org = Organization.objects.get(slug="acme")
audit_record(action="test.as_the_portal", org=org)
audit_record(action="test.as_the_portal", org=Organization.objects.create(name="New", slug="new"))
audit_record(action="test.as_the_portal")
org.name = "Acme Renamed"
org.save(update_fields=["name"])
session = SessionStore()
session["x"] = 1
session.create()
session.delete()
print(json.dumps({report.chain: [report.records, report.ok] for report in audit_chains_verify()}))
"""


def test_the_portal_role_appends_through_the_service_and_keeps_every_chain_valid(
    app_role: Role, trail: list[AuditRecord], owner
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": app_role.database_url(),
        "DJANGO_SETTINGS_MODULE": "kraken_portal.settings.test",
    }
    result = subprocess.run(
        [sys.executable, "-c", AS_THE_PORTAL],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout.strip().splitlines()[-1])
    new = Organization.objects.get(slug="new")
    assert reports == {
        f"org:{owner.org_id}": [4, True],
        f"org:{new.pk}": [1, True],
        "global": [1, True],
    }
    assert Organization.objects.get(slug="acme").name == "Acme Renamed"
    call_command("audit_verify", stdout=io.StringIO())  # and as the owner, too


def test_running_it_again_is_harmless_and_covers_tables_created_since(
    app_role: Role, role_name: str, trail: list[AuditRecord]
) -> None:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE test_new_feature (id int)")
    try:
        with app_role.connect() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM test_new_feature")
        call_command("audit_db_roles", "--role", role_name, stdout=io.StringIO())
        with app_role.connect() as conn:
            conn.execute("INSERT INTO test_new_feature VALUES (1)")
            conn.execute("DELETE FROM test_new_feature")
        assert "permission denied" in refused(app_role, "DELETE FROM audit_auditrecord")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE test_new_feature")


def test_the_printed_sql_changes_nothing_and_grants_the_same_when_run(role_name: str) -> None:
    out = io.StringIO()
    call_command("audit_db_roles", "--role", role_name, "--print-sql", stdout=out)
    script = out.getvalue()
    assert f'GRANT SELECT, INSERT ON "public"."{RECORDS}" TO "{role_name}";' in script
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role_name])
        assert cursor.fetchone() is None
        cursor.execute(script)  # what a DBA would paste into psql as the owner
        privileges = {}
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER"):
            cursor.execute(
                "SELECT has_table_privilege(%s, %s, %s), "
                "has_table_privilege(%s, 'orgs_organization', %s)",
                [role_name, RECORDS, privilege, role_name, privilege],
            )
            privileges[privilege] = cursor.fetchone()
    assert privileges == {
        "SELECT": (True, True),
        "INSERT": (True, True),
        "UPDATE": (False, True),
        "DELETE": (False, True),
        "TRUNCATE": (False, False),
        "TRIGGER": (False, False),
    }


def test_it_refuses_to_turn_the_owner_into_the_portal_role(db) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (current,) = cursor.fetchone()
    with pytest.raises(CommandError, match="must not be the owner"):
        call_command("audit_db_roles", "--role", current, stdout=io.StringIO())


def test_it_refuses_a_role_name_it_would_have_to_quote(db) -> None:
    with pytest.raises(CommandError, match="lower-case letters"):
        call_command("audit_db_roles", "--role", 'x"; DROP TABLE y; --', stdout=io.StringIO())
