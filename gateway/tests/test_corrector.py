"""The Corrector on its own: an app's policy over models served in process and a SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gateway_test_support import app_toml, serve_ensemble
from in_process import LocalModels

from ketch_gateway import Gateway, parse_config
from ketch_gateway.correction.app import App
from ketch_gateway.correction.corrector import SHARED, Corrector
from ketch_gateway.correction.queries import Feedback, Query
from ketch_gateway.errors import ApiError, BadRequest, InvalidValue

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def gateway(
    tmp_path: Path, local_models: LocalModels, ensemble_models: dict[str, Path]
) -> AsyncIterator[Gateway]:
    text = serve_ensemble(local_models, ensemble_models, slow={"weak": 0.3})
    text += app_toml("exp4", "exp4") + app_toml("exp3", "exp3")
    config = parse_config(text, str(tmp_path / "ketch.toml"), tmp_path)
    started = Gateway(config, connect=local_models.connect)
    await started.start()
    yield started
    await started.stop()


def corrector_of(gateway: Gateway, name: str) -> Corrector:
    app: App = gateway.apps.find(name)
    assert app.corrector is not None
    assert app.corrector.app is app
    return app.corrector


def soon(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_every_model_answers_by_a_generous_deadline(gateway: Gateway, digits: Any) -> None:
    corrector = corrector_of(gateway, "exp4")
    corrected = await corrector.predict(Query(digits[0][:3].tolist()), soon(5))
    assert corrected.asked == ["good", "weak", "wrong"]
    assert corrected.failures == {}
    assert len(corrected.rows) == 3
    assert corrected.rows[0].contributors == ["good", "weak", "wrong"]
    assert [corrector.output(row) for row in corrected.rows] == digits[1][:3].tolist()


async def test_a_straggler_is_left_out_at_the_deadline(gateway: Gateway, digits: Any) -> None:
    corrector = corrector_of(gateway, "exp4")
    corrected = await corrector.predict(Query([digits[0][9].tolist()]), soon(0.15))
    assert corrected.failures == {"weak": "did not answer in time"}
    assert corrected.rows[0].contributors == ["good", "wrong"]


async def test_rows_that_do_not_fit_are_located_within_the_query(gateway: Gateway) -> None:
    corrector = corrector_of(gateway, "exp4")
    with pytest.raises(InvalidValue) as refused:
        await corrector.predict(Query([[1.0, 2.0]]), soon(5))
    assert refused.value.location == ()
    assert refused.value.within("inputs").message.startswith("inputs: 2 values")


async def test_feedback_teaches_the_app_and_the_user(gateway: Gateway, digits: Any) -> None:
    corrector = corrector_of(gateway, "exp4")
    row, label = digits[0][1100], int(digits[1][1100])
    learnt = await corrector.observe(Feedback(row.tolist(), label, user="ada"))
    assert set(learnt.predictions) == {"good", "weak", "wrong"}
    assert learnt.forwarded is None
    shared = await gateway.store.load_policy_state("exp4", SHARED)
    personal = await gateway.store.load_policy_state("exp4", "ada")
    assert shared is not None
    assert personal is not None
    assert shared["models"] == ["good", "weak", "wrong"]
    assert np.argmax(personal["log_weights"]) != 2


async def test_a_bandit_learns_from_the_model_it_played(gateway: Gateway, digits: Any) -> None:
    corrector = corrector_of(gateway, "exp3")
    query = Query([digits[0][7].tolist()])
    corrected = await corrector.predict(query, soon(5))
    played = corrected.asked[0]
    await corrector.flush()  # which model answered is written in the background
    assert await gateway.store.recall_query(query.id) == {"model": played, "user": None}
    await corrector.observe(Feedback(digits[0][7].tolist(), int(digits[1][7]), None, query.id))
    state = await gateway.store.load_policy_state("exp3", SHARED)
    assert state is not None
    changed = [w != 0.0 for w in state["log_weights"]]
    assert changed.count(True) <= 2  # one weight rose; the shift keeps the top at zero


async def test_bad_labels_and_no_models_are_refused(gateway: Gateway, digits: Any) -> None:
    corrector = corrector_of(gateway, "exp4")
    with pytest.raises(BadRequest, match="label: expected a class index from 0 to 9"):
        await corrector.observe(Feedback(digits[0][0].tolist(), 10))
    corrector.app.linked.clear()
    with pytest.raises(ApiError, match="has no linked model"):
        await corrector.predict(Query([digits[0][0].tolist()]), soon(5))
