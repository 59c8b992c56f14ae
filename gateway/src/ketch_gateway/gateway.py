"""The gateway: its models, apps, state store and metrics, from start to stop.

Admin changes (:mod:`ketch_gateway.control.admin`) are applied to the running
gateway and appended to the state store's admin log; on start-up the log is
replayed over the configuration file, so a restart keeps them, and while the
gateway runs it follows the log (:mod:`ketch_gateway.control.admin_sync`), so
that a change made on another gateway sharing the store is applied here too. A
change that no longer applies (its model left the file) is skipped with a warning.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ketch import ClientTls
from ketch.telemetry.settings import wrapper_environment
from ketch_gateway.background import cancel_and_wait
from ketch_gateway.catalog import Catalog
from ketch_gateway.control.admin import ADMIN_OPERATIONS, as_recorded
from ketch_gateway.control.admin_sync import AdminFollower
from ketch_gateway.control.auth_throttle import AuthThrottle
from ketch_gateway.control.config import AppConfig, GatewayConfig, GatewaySettings, ModelConfig
from ketch_gateway.control.config_reader import ConfigError
from ketch_gateway.control.supervisor import RestartPolicy, StartGate
from ketch_gateway.correction.app import App
from ketch_gateway.errors import BadRequest, ServiceUnavailable
from ketch_gateway.metrics import Metrics
from ketch_gateway.observability.history import MetricsHistory
from ketch_gateway.observability.recent_errors import RecentErrors
from ketch_gateway.observability.state_metrics import GatewayStateCollector
from ketch_gateway.rollouts.manager import Rollouts
from ketch_gateway.serving.context import ServingContext
from ketch_gateway.serving.discovery import DiscoverySettings
from ketch_gateway.serving.models import Model
from ketch_gateway.serving.replicas import Connect, connect_grpc
from ketch_gateway.stores.contract import AdminBusy, open_store
from ketch_gateway.stores.guard import GuardedStore

if TYPE_CHECKING:
    from ketch.telemetry.tracing import Tracing

__all__ = ["Gateway", "wrapper_start_gate"]

_log = logging.getLogger(__name__)

PROBE_INTERVAL_S: Final = 1.0
DEFAULT_BATCH_OBJECTIVE_S: Final = 0.02
STORE_WAIT_S: Final = 60.0
"""How long start-up waits for the state store to answer before giving up."""
STORE_WAIT_REPORT_S: Final = 5.0


def _with_tls(connect: Connect, settings: GatewaySettings) -> Connect:
    """How replicas at configured addresses are reached: over TLS when ``wrapper_tls`` is set."""
    tls = settings.wrapper_tls
    if tls is None or connect is not connect_grpc:
        return connect
    client_tls = ClientTls(tls.ca, tls.certificate, tls.key, tls.server_name)
    return functools.partial(connect_grpc, tls=client_tls)


def wrapper_start_gate(config: GatewayConfig) -> StartGate:
    """How the configuration's managed wrappers start: their environment, how many at once."""
    wrappers = config.wrappers
    environment = {**wrappers.environment(), **wrapper_environment(config.tracing)}
    return StartGate(environment, wrappers.max_starting)


class Gateway:
    """Everything the routes serve from.

    :param restart: how managed wrappers that exit are restarted.
    :param connect: how a replica is reached from its address (gRPC; tests may
        serve a model in process instead).
    :param tracing: the tracer of its spans; by default the one the configuration's
        tracing settings ask for (None when tracing is off).
    :param parent_wrappers: in a worker of ``--workers N``, the managed wrappers its parent
        started, by model and version (see :class:`~ketch_gateway.serving.context.ServingContext`).
    """

    def __init__(
        self,
        config: GatewayConfig,
        restart: RestartPolicy | None = None,
        *,
        connect: Connect = connect_grpc,
        tracing: Tracing | None = None,
        parent_wrappers: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None,
    ) -> None:
        self.config = config
        self.settings = config.settings
        self.base = config.source.resolve().parent if config.source else Path.cwd()
        self.metrics = Metrics()
        self.tracing = tracing if tracing is not None else _tracing(config)
        self.auth_throttle = AuthThrottle(config.admin.auth_failures, config.admin.auth_window_s)
        gate = wrapper_start_gate(config)
        discovery = DiscoverySettings(self.settings.resolve_every_s, self.settings.strict_dns)
        self.serving = ServingContext(
            self.metrics,
            restart or RestartPolicy(),
            _with_tls(connect, self.settings),
            gate,
            discovery,
            connect_managed=connect,
            parent_wrappers=parent_wrappers,
        )
        self.history = MetricsHistory(self.metrics)
        self.recent_errors = RecentErrors()
        self.started_at: float | None = None
        self.models: Catalog[Model] = Catalog("model")
        for model in config.models:
            self.models.add(model.name, self.new_model(model))
        self.store = GuardedStore(
            open_store(self.settings.state, user_state_ttl_s=self.settings.user_state_ttl_s),
            self.metrics,
        )
        self.rollouts = Rollouts(self.models, self.store, self.metrics)
        for served in self.models.values():
            self.rollouts.configure(served)
        self.apps: Catalog[App] = Catalog("app")
        for app in config.apps:
            self.apps.add(app.name, self.new_app(app))
        self._refresh_objectives()
        self.metrics.add_collector(GatewayStateCollector(self))
        self.started = False
        self._changes = asyncio.Lock()
        self.admin_log = AdminFollower(
            self.store,
            self.metrics,
            apply=self._apply,
            applied=self._refresh_objectives,
            lock=self._changes,
        )
        self._prober: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None

    def new_model(self, config: ModelConfig) -> Model:
        """A model of this gateway (not started, not yet in :attr:`models`)."""
        return Model(config, self.serving)

    def new_app(self, config: AppConfig) -> App:
        """An app of this gateway, over its models and store (not yet in :attr:`apps`)."""
        return App(config, self.models, self.store)

    async def start(self) -> None:
        """Replay the recorded admin changes, then start every model's replicas.

        Waits (up to a minute) for the state store to answer first: a gateway never
        serves a configuration older than the admin changes made to it. Raises
        ConnectionError when the store does not answer, ConfigError when a ``dns:``
        address does not resolve under strict DNS.
        """
        await self._wait_for_store()
        async with self._changes:
            await self.admin_log.catch_up("startup")
        logging.getLogger("ketch_gateway").addHandler(self.recent_errors)
        await asyncio.gather(*(model.start() for model in self.models.values()))
        self.started = True
        self.started_at = time.time()
        self.store.start_watching()
        await self.admin_log.start()
        self.rollouts.start(self.change)
        loop = asyncio.get_running_loop()
        self._prober = loop.create_task(self._probe_forever())
        self._sampler = loop.create_task(self._sample_forever())

    async def _wait_for_store(self) -> None:
        started = time.monotonic()
        reported = started
        while True:
            try:
                await self.store.backend.ping()
                return
            except self.store.unavailable_errors as error:
                now = time.monotonic()
                if now - started > STORE_WAIT_S:
                    raise ConnectionError(
                        f"the state store did not answer for {STORE_WAIT_S:g} s: {error}"
                    ) from None
                if now - reported > STORE_WAIT_REPORT_S:
                    _log.warning("waiting for the state store to answer: %s", error)
                    reported = now
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        """Stop the managed wrappers, close the channels and the store; export the last spans."""
        await self.admin_log.stop()
        await cancel_and_wait(self._prober)
        await cancel_and_wait(self._sampler)
        await self.rollouts.stop()
        await asyncio.gather(*(model.stop() for model in self.models.values()))
        for app in self.apps.values():
            if app.corrector is not None:
                await app.corrector.flush()
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
            await asyncio.gather(
                *(
                    version.replicas.probe_unhealthy()
                    for model in list(self.models.values())
                    for version in list(model.versions.values())
                )
            )

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
        """Apply an admin change, record it, and describe the result.

        Under the store's admin lock, after applying what other gateways recorded, so
        that every gateway applies the same changes in the same order. StoreUnavailable
        (503) when the store cannot be reached: nothing is changed (unless the store
        went away in the moment between applying and recording; then this gateway
        alone has the change, and the caller, answered 503, should make it again).
        """
        async with self._changes:
            try:
                async with self.store.admin_lock():
                    await self.admin_log.catch_up("poll")
                    try:
                        result = await self._apply(operation, body)
                    except ConfigError as error:
                        raise BadRequest(str(error)) from None
                    self._refresh_objectives()
                    position = await self.store.record_admin_change(
                        *as_recorded(operation, body, result)
                    )
            except AdminBusy as error:
                raise ServiceUnavailable(f"{error}; retry", headers={"Retry-After": "1"}) from None
            self.metrics.admin_applied.labels("local").inc()
            self.admin_log.moved_to(position)
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
