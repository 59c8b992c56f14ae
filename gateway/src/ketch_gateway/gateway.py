"""The gateway's state: models, apps, the store, metrics; and every admin change to them.

Admin changes are applied to the running gateway and appended to the state
store; on start-up they are replayed over the configuration file, so a restart
keeps them. A change that no longer applies (its model left the file) is skipped
with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ketch_gateway.catalog import Catalog
from ketch_gateway.control.config import GatewayConfig, read_app, read_model, read_version
from ketch_gateway.control.config_reader import ConfigError, Reader
from ketch_gateway.control.supervisor import RestartPolicy
from ketch_gateway.correction.app import App
from ketch_gateway.errors import ApiError, BadRequest, Conflict, NotFound
from ketch_gateway.metrics import Metrics
from ketch_gateway.serving.models import Model
from ketch_gateway.stores.contract import StateStore, open_store

__all__ = ["ADMIN_OPERATIONS", "Gateway"]

_log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 1.0
DEFAULT_BATCH_OBJECTIVE_S = 0.02


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{key}: expected a non-empty string")
    return value


class Gateway:
    """Everything the routes serve from, and the operations that change it."""

    def __init__(self, config: GatewayConfig, restart: RestartPolicy | None = None) -> None:
        self.config = config
        self.settings = config.settings
        self.base = config.source.resolve().parent if config.source else Path.cwd()
        self.restart = restart or RestartPolicy()
        self.metrics = Metrics()
        self.models: Catalog[Model] = Catalog("model")
        for model in config.models:
            self.models.add(model.name, Model(model, self.restart, self.metrics))
        self.store: StateStore = open_store(self.settings.state)
        self.apps: Catalog[App] = Catalog("app")
        for app in config.apps:
            self.apps.add(app.name, App(app, self.models, self.store))
        self._refresh_objectives()
        self.started = False
        self._changes = asyncio.Lock()
        self._prober: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Replay the recorded admin changes, then start every model's replicas."""
        for operation, body in await self.store.admin_changes():
            try:
                await self._apply(operation, body)
            except (ApiError, ConfigError) as error:
                _log.warning("skipping the recorded admin change %s %s: %s", operation, body, error)
        self._refresh_objectives()
        await asyncio.gather(*(model.start() for model in self.models.values()))
        self.started = True
        self._prober = asyncio.get_running_loop().create_task(self._probe_forever())

    async def stop(self) -> None:
        """Stop the managed wrappers, close the channels and the store."""
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
        await asyncio.gather(*(model.stop() for model in self.models.values()))
        await self.store.close()

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL_S)
            for model in list(self.models.values()):
                for version in list(model.versions.values()):
                    await version.replicas.probe_unhealthy()

    def _refresh_objectives(self) -> None:
        """Aim each model's batches at half the tightest objective of the apps that use it."""
        for model in self.models.values():
            objectives = [app.objective_s for app in self.apps.values() if model.name in app.linked]
            model.set_batch_objective(
                min(objectives) / 2 if objectives else DEFAULT_BATCH_OBJECTIVE_S
            )

    def ready(self) -> bool:
        """Whether every model's current version has a healthy replica."""
        return all(model.version().replicas.healthy() for model in self.models.values())

    async def change(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """Apply an admin change, record it, and describe the result."""
        async with self._changes:
            try:
                result = await self._apply(operation, body)
            except ConfigError as error:
                raise BadRequest(str(error)) from None
            self._refresh_objectives()
            await self.store.record_admin_change(*_as_recorded(operation, body, result))
            return result

    async def _apply(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        handler = ADMIN_OPERATIONS.get(operation)
        if handler is None:
            raise BadRequest(f"unknown admin operation {operation!r}")
        return await handler(self, body)

    async def _add_model(self, body: dict[str, Any]) -> dict[str, Any]:
        config = read_model(Reader(body), self.base)
        model = Model(config, self.restart, self.metrics)
        self.models.add(config.name, model)
        if self.started:
            await model.start()
        return model.describe()

    async def _remove_model(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _text(body, "model")
        self.models.find(name)
        users = [app.name for app in self.apps.values() if name in app.linked]
        if users:
            raise Conflict(
                f"model {name!r} is linked to app(s) {', '.join(users)}; unlink it first"
            )
        await self.models.remove(name).stop()
        return {"removed": name}

    async def _add_version(self, body: dict[str, Any]) -> dict[str, Any]:
        model = self.models.find(_text(body, "model"))
        fields = {key: value for key, value in body.items() if key != "model"}
        version = await model.add_version(read_version(Reader(fields), self.base))
        return version.describe()

    async def _set_version(self, body: dict[str, Any]) -> dict[str, Any]:
        model = self.models.find(_text(body, "model"))
        model.set_current(_text(body, "version"))
        return model.describe()

    async def _add_replica(self, body: dict[str, Any]) -> dict[str, Any]:
        version = self.models.find(_text(body, "model")).version(_text(body, "version"))
        await version.add_address(_text(body, "address"))
        return version.describe()

    async def _remove_replica(self, body: dict[str, Any]) -> dict[str, Any]:
        version = self.models.find(_text(body, "model")).version(_text(body, "version"))
        address = _text(body, "address")
        if address in version.addresses:
            await version.remove_address(address)
            return {**version.describe(), "removed": address, "removed_kind": "external"}
        if not await version.remove_managed(address):
            raise NotFound(f"{version.label} has no replica at {address}")
        return {**version.describe(), "removed": address, "removed_kind": "managed"}

    async def _scale(self, body: dict[str, Any]) -> dict[str, Any]:
        version = self.models.find(_text(body, "model")).version(_text(body, "version"))
        count = body.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise BadRequest("count: expected a whole number of managed replicas (0 or more)")
        await version.scale(count)
        return version.describe()

    async def _add_app(self, body: dict[str, Any]) -> dict[str, Any]:
        config = read_app(Reader(body), {name: m.config for name, m in self.models.items()})
        app = App(config, self.models, self.store)
        self.apps.add(config.name, app)
        return app.describe()

    async def _remove_app(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _text(body, "app")
        self.apps.remove(name)
        return {"removed": name}

    async def _link(self, body: dict[str, Any]) -> dict[str, Any]:
        app = self.apps.find(_text(body, "app"))
        model = self.models.find(_text(body, "model"))
        if model.name in app.linked:
            raise Conflict(f"model {model.name!r} is already linked to app {app.name!r}")
        app.linked.append(model.name)
        return app.describe()

    async def _unlink(self, body: dict[str, Any]) -> dict[str, Any]:
        app = self.apps.find(_text(body, "app"))
        model = _text(body, "model")
        if model not in app.linked:
            raise NotFound(f"model {model!r} is not linked to app {app.name!r}")
        app.linked.remove(model)
        return app.describe()


def _as_recorded(
    operation: str, body: dict[str, Any], result: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """What to replay for a change.

    A managed replica's address changes on restart, so removing one is recorded as the
    managed count it left.
    """
    if operation == "remove_replica" and result.get("removed_kind") == "managed":
        return "scale", {
            "model": body["model"],
            "version": body["version"],
            "count": result["managed"],
        }
    return operation, body


Operation = Callable[[Gateway, dict[str, Any]], Awaitable[dict[str, Any]]]

ADMIN_OPERATIONS: dict[str, Operation] = {
    "add_model": Gateway._add_model,
    "remove_model": Gateway._remove_model,
    "add_version": Gateway._add_version,
    "set_version": Gateway._set_version,
    "add_replica": Gateway._add_replica,
    "remove_replica": Gateway._remove_replica,
    "scale": Gateway._scale,
    "add_app": Gateway._add_app,
    "remove_app": Gateway._remove_app,
    "link": Gateway._link,
    "unlink": Gateway._unlink,
}
"""Every admin change, by the name the state store records it under."""
