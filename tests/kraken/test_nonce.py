"""Nonces and the per-key sequencer, against the real Redis."""

from __future__ import annotations

import itertools
import secrets
import threading
import time

import pytest

from apps.kraken import nonce


@pytest.fixture
def api_key() -> str:
    return "test-" + secrets.token_hex(8)


def test_nonces_strictly_increase_even_faster_than_the_clock(api_key: str) -> None:
    values = [nonce.next_nonce(api_key) for _ in range(500)]
    assert all(b > a for a, b in itertools.pairwise(values))


def test_nonces_follow_the_clock_in_ten_nanosecond_units(api_key: str) -> None:
    before = int(time.time() * 100_000_000)
    value = nonce.next_nonce(api_key)
    after = int(time.time() * 100_000_000)
    # Redis' clock and ours are the same machine's clock; allow a little scheduling slack.
    assert before - 10**8 <= value <= after + 10**8


def test_a_counter_ahead_of_the_clock_continues_from_its_last_value(api_key: str) -> None:
    ahead = 9_000_000_000_000_000_000
    nonce.redis_client().set(f"kraken:nonce:{nonce.key_ref(api_key)}", str(ahead))
    assert nonce.next_nonce(api_key) == ahead + 1


def test_a_counter_behind_the_clock_jumps_to_the_clock(api_key: str) -> None:
    nonce.redis_client().set(f"kraken:nonce:{nonce.key_ref(api_key)}", "12345")
    assert nonce.next_nonce(api_key) > int((time.time() - 60) * 100_000_000)


def test_nonces_are_unique_across_threads(api_key: str) -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        got = [nonce.next_nonce(api_key) for _ in range(100)]
        with lock:
            seen.extend(got)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 600


def test_the_sequencer_lets_one_holder_in_at_a_time(api_key: str) -> None:
    inside = 0
    most = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        for _ in range(20):
            with nonce.sequenced(api_key, ttl=5, wait=10):
                with lock:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.001)
                with lock:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 1


def test_a_lease_left_by_a_crashed_holder_expires(api_key: str) -> None:
    nonce.redis_client().set(f"kraken:seq:{nonce.key_ref(api_key)}", "dead-worker", px=200)
    with nonce.sequenced(api_key, ttl=5, wait=5):
        pass


def test_waiting_too_long_for_the_sequencer_is_an_error(api_key: str) -> None:
    with (
        nonce.sequenced(api_key, ttl=5, wait=1),
        pytest.raises(nonce.SequencerTimeout),
        nonce.sequenced(api_key, ttl=5, wait=0.1),
    ):
        pass


def test_redis_keys_never_contain_the_api_key(api_key: str) -> None:
    nonce.next_nonce(api_key)
    assert not [k for k in nonce.redis_client().keys("kraken:*") if api_key in k]
