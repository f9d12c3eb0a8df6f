"""Many writers at once still produce one gapless, verifiable chain (real PostgreSQL locks)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from apps.audit.chain import chain_key_for
from apps.audit.models import AuditRecord
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import audit_record

WRITERS = 6
APPENDS_EACH = 15


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_from_many_threads_keep_a_gapless_chain(owner, trader) -> None:
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(APPENDS_EACH):
                actor = owner if n % 2 else trader
                audit_record(action="test.concurrent", actor=actor, detail={"w": n, "i": i})
        except BaseException as error:  # reported to the main thread below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    chain = chain_key_for(owner.org_id)
    seqs = list(
        AuditRecord.objects.filter(chain=chain).order_by("seq").values_list("seq", flat=True)
    )
    assert seqs == list(range(1, WRITERS * APPENDS_EACH + 1))
    report = audit_chain_verify(chain=chain)
    assert report.ok, report.broken
    assert report.records == WRITERS * APPENDS_EACH
    # Every writer's appends all landed, in that writer's own order.
    for n in range(WRITERS):
        mine = list(
            AuditRecord.objects.filter(chain=chain, detail__w=n)
            .order_by("seq")
            .values_list("detail__i", flat=True)
        )
        assert mine == list(range(APPENDS_EACH))
