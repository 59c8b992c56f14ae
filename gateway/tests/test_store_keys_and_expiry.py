"""The state stores keep apps and users apart, forget idle users' state, and migrate old keys."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as redis
from gateway_test_support import redis_server

from ketch_gateway.stores.contract import StateStore, open_store
from ketch_gateway.stores.redis_store import SCHEMA_VERSION
from ketch_gateway.stores.sqlite_store import SWEEP_INTERVAL_S, SqliteStateStore

pytestmark = pytest.mark.anyio
DAY = 24 * 3600.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    with contextlib.ExitStack() as servers:
        location = (
            str(tmp_path / "state.sqlite")
            if request.param == "sqlite"
            else servers.enter_context(redis_server(tmp_path))
        )
        opened = open_store(location, user_state_ttl_s=DAY)
        yield opened
        await opened.close()


async def test_a_user_named_like_another_apps_state_cannot_reach_it(store: StateStore) -> None:
    await store.update_policy_state("ens:victim", "", lambda state: {"owner": "ens:victim"})
    await store.update_policy_state("ens", "victim:", lambda state: {"owner": "a user of ens"})
    assert await store.load_policy_state("ens:victim", "") == {"owner": "ens:victim"}
    assert await store.load_policy_state("ens", "victim:") == {"owner": "a user of ens"}
    await store.record_feedback("ens:victim", user=None, row=[1], label=1, query_id=None)
    assert await store.feedback("ens") == []
    assert len(await store.feedback("ens:victim")) == 1


class Clock:
    """Seconds since the epoch, moved on by the test."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_sqlite_forgets_idle_users_state(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "state.sqlite"
    store = SqliteStateStore(path, user_state_ttl_s=DAY, clock=clock)
    for user in range(2000):
        await store.update_policy_state("app", f"user-{user}", lambda state: {"w": 1})
    await store.update_policy_state("app", "", lambda state: {"shared": True})
    clock.now += DAY / 2
    await store.update_policy_state("app", "recent", lambda state: {"w": 2})

    def stored() -> int:
        with sqlite3.connect(path) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM policy_state").fetchone()[0])

    assert stored() == 2002
    clock.now += DAY / 2 + SWEEP_INTERVAL_S
    assert await store.load_policy_state("app", "user-7") is None
    assert await store.load_policy_state("app", "recent") == {"w": 2}
    assert await store.update_policy_state("app", "user-8", lambda state: state or {"w": 0}) == {
        "w": 0
    }
    assert stored() == 3  # the shared state, "recent" and user-8, learnt afresh
    assert await store.load_policy_state("app", "") == {"shared": True}
    await store.close()


async def test_sqlite_keeps_user_state_without_a_ttl(tmp_path: Path) -> None:
    clock = Clock()
    store = SqliteStateStore(tmp_path / "state.sqlite", clock=clock)
    await store.update_policy_state("app", "ada", lambda state: {"w": 1})
    clock.now += 10_000 * DAY
    await store.update_policy_state("app", "bob", lambda state: {"w": 1})
    assert await store.load_policy_state("app", "ada") == {"w": 1}
    await store.close()


async def test_redis_user_state_expires_and_shared_state_does_not(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        store = open_store(url, user_state_ttl_s=DAY)
        await store.update_policy_state("app", "ada", lambda state: {"w": 1})
        await store.update_policy_state("app", "", lambda state: {"w": 1})
        client = redis.Redis.from_url(url, decode_responses=True)
        assert 0 < await client.pttl("ketch:state:app:ada") <= DAY * 1000
        assert await client.pttl("ketch:state:app:") == -1
        await client.aclose()
        await store.close()


async def test_redis_stores_written_before_encoding_are_migrated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_server(tmp_path) as url:
        client = redis.Redis.from_url(url, decode_responses=True)
        await client.rpush("ketch:feedback:ens:victim", '{"id": 1, "user": null, "label": 1}')
        await client.set("ketch:state:a%b:ada", '{"w": 1}')
        await client.set("ketch:state:plain:bob", '{"w": 2}')
        await client.set("ketch:state:ens:victim:", '{"w": 3}')
        store = open_store(url)
        with caplog.at_level(logging.WARNING):
            assert [r["label"] for r in await store.feedback("ens:victim")] == [1]
        assert await store.load_policy_state("a%b", "ada") == {"w": 1}
        assert await store.load_policy_state("plain", "bob") == {"w": 2}
        assert await client.get("ketch:schema") == SCHEMA_VERSION
        assert await client.get("ketch:state:ens:victim:") == '{"w": 3}'
        assert "cannot tell its app from its user" in caplog.text
        await client.aclose()
        await store.close()
