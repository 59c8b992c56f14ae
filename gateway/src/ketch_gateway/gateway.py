"""The gateway: its models, apps, state store and metrics, from start to stop.

Admin changes (:mod:`ketch_gateway.control.admin`) are applied to the running
gateway and appended to the state store; on start-up they are replayed over the
configuration file, so a restart keeps them. A change that no longer applies
(its model left the file) is skipped with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from ketch_gateway.catalog import Catalog
from ketch_gateway.control.admin import ADMIN_OPERATIONS, as_recorded
from ketch_gateway.control.auth_throttle import AuthThrottle
from ketch_gateway.control.config import AppConfig, GatewayConfig, ModelConfig
from ketch_gateway.control.config_reader import ConfigError
from ketch_gateway.control.supervisor import RestartPolicy, StartGate
from ketch_gateway.correction.app import App
from ketch_gateway.errors import ApiError, BadRequest
from ketch_gateway.metrics import Metrics
from ketch_gateway.serving.context import ServingContext
from ketch_gateway.serving.models import Model
from ketch_gateway.serving.replicas import Connect, connect_grpc
from ketch_gateway.stores.contract import StateStore, open_store

__all__ = ["Gateway"]

_log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 1.0
DEFAULT_BATCH_OBJECTIVE_S = 0.02


class Gateway:
    """Everything the routes serve from.

    :param restart: how managed wrappers that exit are restarted.
    :param connect: how a replica is reached from its address (gRPC; tests may
        serve a model in process instead).
    """

    def __init__(
        self,
        config: GatewayConfig,
        restart: RestartPolicy | None = None,
        *,
        connect: Connect = connect_grpc,
    ) -> None:
        self.config = config
        self.settings = config.settings
        self.base = config.source.resolve().parent if config.source else Path.cwd()
        self.metrics = Metrics()
        self.auth_throttle = AuthThrottle(config.admin.auth_failures, config.admin.auth_window_s)
        wrappers = config.wrappers
        gate = StartGate(wrappers.environment(), wrappers.max_starting)
        self.serving = ServingContext(self.metrics, restart or RestartPolicy(), connect, gate)
        self.models: Catalog[Model] = Catalog("model")
        for model in config.models:
            self.models.add(model.name, self.new_model(model))
        self.store: StateStore = open_store(self.settings.state)
        self.apps: Catalog[App] = Catalog("app")
        for app in config.apps:
            self.apps.add(app.name, self.new_app(app))
        self._refresh_objectives()
        self.started = False
        self._changes = asyncio.Lock()
        self._prober: asyncio.Task[None] | None = None

    def new_model(self, config: ModelConfig) -> Model:
        """A model of this gateway (not started, not yet in :attr:`models`)."""
        return Model(config, self.serving)

    def new_app(self, config: AppConfig) -> App:
        """An app of this gateway, over its models and store (not yet in :attr:`apps`)."""
        return App(config, self.models, self.store)

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
            await self.store.record_admin_change(*as_recorded(operation, body, result))
            return result

    async def _apply(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        handler = ADMIN_OPERATIONS.get(operation)
        if handler is None:
            raise BadRequest(f"unknown admin operation {operation!r}")
        return await handler(self, body)
