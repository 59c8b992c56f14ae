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
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ketch.telemetry.settings import wrapper_environment
from ketch_gateway.catalog import Catalog
from ketch_gateway.control.admin import ADMIN_OPERATIONS, as_recorded
from ketch_gateway.control.auth_throttle import AuthThrottle
from ketch_gateway.control.config import AppConfig, GatewayConfig, ModelConfig
from ketch_gateway.control.config_reader import ConfigError
from ketch_gateway.control.supervisor import RestartPolicy, StartGate
from ketch_gateway.correction.app import App
from ketch_gateway.errors import ApiError, BadRequest
from ketch_gateway.metrics import Metrics
from ketch_gateway.observability.history import MetricsHistory
from ketch_gateway.observability.recent_errors import RecentErrors
from ketch_gateway.observability.state_metrics import GatewayStateCollector
from ketch_gateway.serving.context import ServingContext
from ketch_gateway.serving.models import Model
from ketch_gateway.serving.replicas import Connect, connect_grpc
from ketch_gateway.stores.contract import StateStore, open_store

if TYPE_CHECKING:
    from ketch.telemetry.tracing import Tracing

__all__ = ["Gateway"]

_log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 1.0
DEFAULT_BATCH_OBJECTIVE_S = 0.02


class Gateway:
    """Everything the routes serve from.

    :param restart: how managed wrappers that exit are restarted.
    :param connect: how a replica is reached from its address (gRPC; tests may
        serve a model in process instead).
    :param tracing: the tracer of its spans; by default the one the configuration's
        tracing settings ask for (None when tracing is off).
    """

    def __init__(
        self,
        config: GatewayConfig,
        restart: RestartPolicy | None = None,
        *,
        connect: Connect = connect_grpc,
        tracing: Tracing | None = None,
    ) -> None:
        self.config = config
        self.settings = config.settings
        self.base = config.source.resolve().parent if config.source else Path.cwd()
        self.metrics = Metrics()
        self.tracing = tracing if tracing is not None else _tracing(config)
        self.auth_throttle = AuthThrottle(config.admin.auth_failures, config.admin.auth_window_s)
        wrappers = config.wrappers
        environment = {**wrappers.environment(), **wrapper_environment(config.tracing)}
        gate = StartGate(environment, wrappers.max_starting)
        self.serving = ServingContext(self.metrics, restart or RestartPolicy(), connect, gate)
        self.history = MetricsHistory(self.metrics)
        self.recent_errors = RecentErrors()
        self.started_at: float | None = None
        self.models: Catalog[Model] = Catalog("model")
        for model in config.models:
            self.models.add(model.name, self.new_model(model))
        self.store: StateStore = open_store(self.settings.state)
        self.apps: Catalog[App] = Catalog("app")
        for app in config.apps:
            self.apps.add(app.name, self.new_app(app))
        self._refresh_objectives()
        self.metrics.registry.register(GatewayStateCollector(self))
        self.started = False
        self._changes = asyncio.Lock()
        self._prober: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None

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
        logging.getLogger("ketch_gateway").addHandler(self.recent_errors)
        await asyncio.gather(*(model.start() for model in self.models.values()))
        self.started = True
        self.started_at = time.time()
        loop = asyncio.get_running_loop()
        self._prober = loop.create_task(self._probe_forever())
        self._sampler = loop.create_task(self._sample_forever())

    async def stop(self) -> None:
        """Stop the managed wrappers, close the channels and the store; export the last spans."""
        for task in (self._prober, self._sampler):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await asyncio.gather(*(model.stop() for model in self.models.values()))
        await self.store.close()
        logging.getLogger("ketch_gateway").removeHandler(self.recent_errors)
        if self.tracing is not None:
            self.tracing.shutdown()

    async def _sample_forever(self) -> None:
        """Read the request metrics every interval, for the dashboard's charts."""
        while True:
            self.history.sample()
            await asyncio.sleep(self.history.interval)

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


def _tracing(config: GatewayConfig) -> Tracing | None:
    """The tracer the configuration asks for; None when tracing is off."""
    settings = config.tracing
    if not settings.enabled:
        return None
    try:
        from ketch.telemetry.tracing import Tracing
    except ImportError as error:
        raise ConfigError(
            f"tracing is on but OpenTelemetry is not installed ({error}); "
            "pip install 'ketch-gateway[tracing]'"
        ) from None
    return Tracing(settings)
