"""The state store's contract, run against SQLite and against a real Redis server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gateway_test_support import redis_server

from ketch_gateway.stores.contract import StateStore, open_store
from ketch_gateway.stores.sqlite_store import SqliteStateStore


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    if request.param == "sqlite":
        opened: StateStore = SqliteStateStore(tmp_path / "state.sqlite")
        yield opened
        await opened.close()
        return
    with redis_server(tmp_path) as url:
        opened = open_store(url)
        yield opened
        await opened.close()


pytestmark = pytest.mark.anyio


async def test_admin_changes_keep_their_order(store: StateStore) -> None:
    assert await store.admin_change_count() == 0
    assert await store.record_admin_change("add_app", {"name": "a"}) == 1
    assert await store.record_admin_change("link", {"app": "a", "model": "m"}) == 2
    assert await store.admin_changes() == [
        ("add_app", {"name": "a"}),
        ("link", {"app": "a", "model": "m"}),
    ]
    assert await store.admin_changes(1) == [("link", {"app": "a", "model": "m"})]
    assert await store.admin_changes(2) == []
    assert await store.admin_change_count() == 2


async def test_feedback_by_app_and_user(store: StateStore) -> None:
    first = await store.record_feedback(
        "a", user="ada", row=[1, 2], label=3, query_id="q", prediction=2
    )
    second = await store.record_feedback("a", user=None, row=[0], label=1, query_id=None)
    await store.record_feedback("b", user="ada", row="text", label="x", query_id=None)
    assert second > first
    records = await store.feedback("a")
    assert [(r["user"], r["input"], r["label"], r["prediction"]) for r in records] == [
        ("ada", [1, 2], 3, 2),
        (None, [0], 1, None),
    ]
    assert [r["label"] for r in await store.feedback("a", "ada")] == [3]


async def test_policy_state_updates_atomically(store: StateStore) -> None:
    assert await store.load_policy_state("app", "ada") is None

    def add_one(state: dict[str, Any] | None) -> dict[str, Any]:
        return {"count": (state or {"count": 0})["count"] + 1}

    await asyncio.gather(*(store.update_policy_state("app", "ada", add_one) for _ in range(25)))
    assert await store.load_policy_state("app", "ada") == {"count": 25}
    assert await store.load_policy_state("app", "") is None


async def test_a_failed_update_changes_nothing(store: StateStore) -> None:
    await store.update_policy_state("app", "u", lambda state: {"v": 1})

    def broken(state: dict[str, Any] | None) -> dict[str, Any]:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await store.update_policy_state("app", "u", broken)
    assert await store.load_policy_state("app", "u") == {"v": 1}


async def test_queries_are_remembered_for_a_while(store: StateStore) -> None:
    await store.remember_query("q1", {"model": "m2"}, ttl_s=30)
    await store.remember_query("q2", {"model": "m3"}, ttl_s=0.05)
    await asyncio.sleep(0.1)
    assert await store.recall_query("q1") == {"model": "m2"}
    assert await store.recall_query("q2") is None
    assert await store.recall_query("unknown") is None


async def test_state_survives_reopening(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        for location in (str(tmp_path / "state.sqlite"), url):
            first = open_store(location)
            await first.update_policy_state("app", "u", lambda state: {"weights": [0.5, 0.5]})
            await first.record_admin_change("remove_app", {"app": "x"})
            await first.close()
            second = open_store(location)
            assert await second.load_policy_state("app", "u") == {"weights": [0.5, 0.5]}
            assert await second.admin_changes() == [("remove_app", {"app": "x"})]
            await second.close()


async def test_two_gateways_updating_one_state_in_redis_lose_no_update(tmp_path: Path) -> None:
    def add_one(state: dict[str, Any] | None) -> dict[str, Any]:
        return {"count": (state or {"count": 0})["count"] + 1}

    with redis_server(tmp_path) as url:
        stores = [open_store(url), open_store(url)]  # two gateways' connections
        try:
            await asyncio.gather(
                *(store.update_policy_state("app", "ada", add_one) for store in stores * 100)
            )
            assert await stores[0].load_policy_state("app", "ada") == {"count": 200}
        finally:
            for store in stores:
                await store.close()


async def test_a_change_recorded_by_one_gateway_is_announced_to_the_others(
    tmp_path: Path,
) -> None:
    with redis_server(tmp_path) as url:
        writer, listener = open_store(url), open_store(url)
        try:
            async with listener.change_announcements() as inbox:
                assert not await inbox.wait(0.01)  # nothing yet
                await writer.record_admin_change("remove_app", {"app": "x"})
                assert await inbox.wait(10)
            assert await listener.admin_change_count() == 1
        finally:
            await writer.close()
            await listener.close()


async def test_the_admin_lock_holds_off_another_gateway(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        first, second = open_store(url), open_store(url)
        order: list[str] = []

        async def change(store: StateStore, name: str, hold: asyncio.Event | None) -> None:
            async with store.admin_lock():
                order.append(f"{name} in")
                if hold is not None:
                    await hold.wait()
                order.append(f"{name} out")

        try:
            release = asyncio.Event()
            holding = asyncio.ensure_future(change(first, "first", release))
            while not order:
                await asyncio.sleep(0.01)
            waiting = asyncio.ensure_future(change(second, "second", None))
            await asyncio.sleep(0.2)
            assert order == ["first in"]  # the second waits for the lock
            release.set()
            await asyncio.gather(holding, waiting)
            assert order == ["first in", "first out", "second in", "second out"]
        finally:
            await first.close()
            await second.close()
