"""The models the gateway serves: versions, replicas, metadata, and the current version."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from ketch import Capabilities, Signature, WrapperCallError
from ketch_gateway.background import cancel_and_wait
from ketch_gateway.control.config import ModelConfig, VersionConfig
from ketch_gateway.control.config_reader import ConfigError
from ketch_gateway.control.supervisor import ManagedWrapper
from ketch_gateway.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from ketch_gateway.serving.chain import build_chain, build_dispatcher
from ketch_gateway.serving.context import ServingContext
from ketch_gateway.serving.discovery import (
    DnsName,
    DnsReplicas,
    check_address,
    parse_dns_address,
)
from ketch_gateway.serving.predictor import Dispatcher, Predictor
from ketch_gateway.serving.replicas import Replica, ReplicaSet
from ketch_gateway.serving.split import Split

__all__ = ["AnswerWatch", "Model", "ModelVersion"]

_log = logging.getLogger(__name__)

_WORKER_SCALE_REFUSAL = (
    "{label}: this gateway runs several worker processes (--workers), whose parent starts "
    "the managed wrappers of the configuration file once for all of them; change the "
    "version's count in the file and restart, or add wrappers you run by address"
)


class ModelVersion:
    """One version of a model: its replicas (external and managed), metadata and predictor.

    An external address is one wrapper's ``host:port``, or ``dns:HOST:PORT`` for every
    address HOST resolves to, followed as DNS changes (:mod:`.discovery`). A replica
    that leaves finishes its calls in flight before its channel closes.

    Until :meth:`start`, changes (addresses, the managed count) only edit what will be
    started, so that the admin changes recorded in the state store can be replayed first.
    """

    def __init__(self, owner: ModelConfig, config: VersionConfig, context: ServingContext) -> None:
        model = owner.name
        self.owner = owner
        self.context = context
        self.model = model
        self.version = config.version
        self.config = config
        self.label = f"model {model!r} version {config.version!r}"
        self.replicas = ReplicaSet(self.label)
        self.addresses = list(config.addresses)
        self.desired = config.launch.count if config.launch else 0
        self.managed: list[ManagedWrapper] = []
        self.signature: Signature | None = None
        self.capabilities: Capabilities | None = None
        self.dispatcher: Dispatcher = build_dispatcher(
            owner, config.version, self.replicas, context.metrics
        )
        self.predictor: Predictor = build_chain(
            owner, config.version, self.dispatcher, context.metrics
        )
        self.started = False
        self.discovered: dict[str, DnsReplicas] = {}
        self._draining: dict[asyncio.Task[None], Replica] = {}
        self._launched = 0

    async def start(self) -> None:
        """Connect to the addresses (resolving dns: ones) and launch the managed wrappers.

        ConfigError when a dns: address does not resolve and discovery is strict.
        """
        self.started = True
        await asyncio.gather(*(self._connect(address) for address in self.addresses))
        if self.context.launches_wrappers:
            await self.scale(self.desired)
        else:
            await self._adopt_parent_wrappers()
        await self.load_metadata()

    async def _adopt_parent_wrappers(self) -> None:
        """Join the managed wrappers that the parent of ``--workers N`` started for this version.

        A version added since (by the admin API) has none there: it may not launch any.
        """
        parent = self.context.parent_wrappers or {}
        addresses = parent.get(self.model, {}).get(self.version, ())
        if self.desired and not addresses:
            raise Conflict(_WORKER_SCALE_REFUSAL.format(label=self.label))
        for address in addresses:
            replica = Replica(address, managed=True, connect=self.context.connect_managed)
            self.replicas.add(replica)
            self.dispatcher.replicas_changed()
            if not await replica.probe():
                _log.warning("%s: managed wrapper %s is not answering yet", self.label, address)

    async def _connect(self, address: str) -> None:
        name = parse_dns_address(address)
        if name is not None:
            await self._discover(address, name)
            return
        replica = Replica(address, connect=self.context.connect)
        self.replicas.add(replica)
        self.dispatcher.replicas_changed()
        if not await replica.probe():
            _log.warning("%s: replica %s is not answering yet; probing", self.label, address)

    async def _discover(self, address: str, name: DnsName) -> None:
        """Follow what ``name`` resolves to: a replica per address, as DNS changes."""
        metrics = self.context.metrics
        labels = (self.model, self.version, address)
        follower = DnsReplicas(
            name,
            self.label,
            self.context.discovery,
            join=lambda resolved: self._join(address, resolved),
            leave=lambda resolved: self._leave(address, resolved),
            addresses=metrics.dns_addresses.labels(*labels),
            failures=metrics.dns_failures.labels(*labels),
        )
        self.discovered[address] = follower
        await follower.refresh()
        if not follower.resolved and self.context.discovery.strict:
            del self.discovered[address]
            raise ConfigError(
                f"{self.label}: addresses: {address} does not resolve to any address "
                "(strict DNS: the gateway does not start without it)"
            )
        follower.start()

    async def _join(self, source: str, address: str) -> None:
        """Add the replica at ``address``, resolved from ``source``."""
        if self.replicas.find(address) is not None:
            _log.warning(
                "%s: %s (from %s) is a replica already; not added twice",
                self.label,
                address,
                source,
            )
            return
        replica = Replica(address, connect=self.context.connect, source=source)
        replica.on_unreachable = self.discovered[source].poke
        self.replicas.add(replica)
        self.dispatcher.replicas_changed()
        if await replica.probe():
            await self.load_metadata()
        else:
            _log.warning("%s: replica %s is not answering yet; probing", self.label, address)

    async def _leave(self, source: str, address: str) -> None:
        """Drain and remove the replica at ``address`` that ``source`` resolved to."""
        replica = self.replicas.find(address)
        if replica is not None and replica.source == source:
            self._retire(replica)

    def _retire(self, replica: Replica) -> None:
        """Out of the rotation now; its channel closes once its calls in flight finish."""
        self.replicas.remove(replica.address)
        self.dispatcher.replicas_changed()
        task = asyncio.get_running_loop().create_task(replica.drain(self.owner.timeout_ms / 1000))
        self._draining[task] = replica
        task.add_done_callback(lambda done: self._draining.pop(done, None))

    async def add_address(self, address: str) -> None:
        """Add an external replica (or dns: name); it joins the rotation once healthy."""
        try:
            check_address(address)
        except ValueError as error:
            raise BadRequest(f"address: {error}") from None
        if address in self.addresses:
            raise Conflict(f"{self.label} already has the replica {address}")
        self.addresses.append(address)
        if self.started:
            try:
                await self._connect(address)
            except ConfigError:
                self.addresses.remove(address)
                raise
            await self.load_metadata()

    async def remove_address(self, address: str) -> None:
        """Remove an external replica (or a dns: name and every replica it resolved to).

        Calls in flight to the replicas removed finish first.
        """
        if address not in self.addresses:
            known = ", ".join(self.addresses) or "none"
            raise NotFound(f"{self.label} has no external replica {address} (external: {known})")
        self.addresses.remove(address)
        follower = self.discovered.pop(address, None)
        if follower is not None:
            await follower.stop()
            for resolved in follower.addresses:
                await self._leave(address, resolved)
            return
        replica = self.replicas.find(address)
        if replica is not None:
            self._retire(replica)

    async def remove_managed(self, address: str) -> bool:
        """Stop the managed wrapper listening at ``address``; whether there was one."""
        wrapper = next((w for w in self.managed if w.address == address), None)
        if wrapper is None:
            return False
        await self._stop_managed(wrapper)
        self.desired = len(self.managed)
        return True

    async def scale(self, count: int) -> None:
        """Run exactly ``count`` managed wrappers (starting or stopping the difference).

        When a wrapper fails to start, those this call started are stopped again and
        the version keeps the wrappers it had; the first failure is raised.
        """
        if count and self.config.launch is None:
            raise BadRequest(f"{self.label} has no plugin and path to launch wrappers from")
        if not self.context.launches_wrappers and self.started:
            raise Conflict(_WORKER_SCALE_REFUSAL.format(label=self.label))
        if not self.started:
            self.desired = count
            return
        added = [self._managed() for _ in range(count - len(self.managed))]
        self.managed.extend(added)
        results = await asyncio.gather(
            *(wrapper.start() for wrapper in added), return_exceptions=True
        )
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            for wrapper in added:
                await self._stop_managed(wrapper)
            raise failure
        self.desired = count
        while len(self.managed) > count:
            await self._stop_managed(self.managed[-1])
        if added:
            await self.load_metadata()

    async def _stop_managed(self, wrapper: ManagedWrapper) -> None:
        self.managed.remove(wrapper)
        await wrapper.stop()
        if wrapper.address is not None:
            replica = self.replicas.remove(wrapper.address)
            self.dispatcher.replicas_changed()
            if replica is not None:
                await replica.close()

    def _managed(self) -> ManagedWrapper:
        launch = self.config.launch
        assert launch is not None
        replica: list[Replica] = []

        def on_ready(address: str) -> None:
            if replica:
                replica[0].reconnect(address)
            else:
                replica.append(Replica(address, managed=True, connect=self.context.connect_managed))
                self.replicas.add(replica[0])
                self.dispatcher.replicas_changed()
            replica[0].healthy = True

        def on_exit() -> None:
            if replica:
                replica[0].healthy = False

        label = f"{self.model} v{self.version} #{self._launched}"
        self._launched += 1
        return ManagedWrapper(
            label,
            model=self.model,
            version=self.version,
            launch=launch,
            on_ready=on_ready,
            on_exit=on_exit,
            policy=self.context.restart,
            gate=self.context.gate,
        )

    async def load_metadata(self) -> Signature | None:
        """Ask a healthy replica for the model's signature (once; cached)."""
        if self.signature is not None:
            return self.signature
        for replica in self.replicas.healthy():
            try:
                metadata = await replica.client.model_metadata(model=self.model)
            except WrapperCallError as error:
                replica.failed(error)
                _log.warning("%s: no metadata from %s: %s", self.label, replica.address, error)
                continue
            self.signature = Signature(
                inputs=metadata.inputs, outputs=metadata.outputs, platform=metadata.platform
            )
            await self._learn_capabilities(replica)
            self.predictor = build_chain(
                self.owner,
                self.version,
                self.dispatcher,
                self.context.metrics,
                signature=self.signature,
                capabilities=self.capabilities,
            )
            return self.signature
        return None

    async def _learn_capabilities(self, replica: Replica) -> None:
        """Learn the wrapper's declared maximum batch, and whether the model learns online.

        Batches stay within the maximum (Ketch wrappers declare it).
        """
        launched = self.config.launch.max_batch if self.config.launch else None
        try:
            capabilities = await replica.client.capabilities(model=self.model)
        except WrapperCallError:  # not a Ketch wrapper: only the configured bound applies
            capabilities = None
        self.capabilities = capabilities
        declared = capabilities.max_batch if capabilities else None
        bounds = [bound for bound in (launched, declared) if bound]
        self.dispatcher.set_max_batch(min(bounds) if bounds else None)

    async def require_signature(self) -> Signature:
        """The signature, or ServiceUnavailable when no replica can give it."""
        signature = await self.load_metadata()
        if signature is None:
            raise ServiceUnavailable(
                f"{self.label}: no replica has answered yet", headers={"Retry-After": "1"}
            )
        return signature

    async def stop(self) -> None:
        """Answer what is queued, stop the managed wrappers and close every channel."""
        for follower in self.discovered.values():
            await follower.stop()
        await self.predictor.close()
        await asyncio.gather(*(wrapper.stop() for wrapper in self.managed))
        for task, replica in list(self._draining.items()):
            await cancel_and_wait(task)
            await replica.close()
        await self.replicas.close()

    def describe(self) -> dict[str, object]:
        """What the admin API shows of it."""
        return {
            "version": self.version,
            "managed": self.desired,
            "addresses": list(self.addresses),
            "dns": {
                address: {"resolved": follower.resolved, "addresses": list(follower.addresses)}
                for address, follower in self.discovered.items()
            },
            "replicas": [replica.describe() for replica in self.replicas.replicas],
            "draining": [replica.address for replica in self._draining.values()],
            "wrappers": [wrapper.describe() for wrapper in self.managed],
            "batching": self.predictor.describe(),
        }


class AnswerWatch(Protocol):
    """Told of every answer to a request that named no version, while a model is watched.

    Rollouts (:mod:`ketch_gateway.rollouts`) watch a model that has a split, a shadow
    or a canary: to time each version, mirror requests and join feedback by query id.
    It is called on the request path, so it must only note things and return.
    """

    def answered(
        self,
        version: str,
        seconds: float,
        *,
        query_id: str | None = None,
        rows: Sequence[Any] = (),
        inputs: Mapping[str, np.ndarray] | None = None,
        answers: Sequence[Any] = (),
        default: bool = False,
    ) -> None:
        """``version`` answered in ``seconds`` (``answers``, one per row, for an app query)."""
        ...


class Model:
    """A model: its versions and which one answers when a request names none.

    ``split`` (shares by version, sticky per user) overrides the current version for
    requests that name none; ``watch`` is told of their answers (see :class:`AnswerWatch`).
    """

    def __init__(self, config: ModelConfig, context: ServingContext) -> None:
        self.name = config.name
        self.config = config
        self.current = config.current_version
        self.timeout_s = config.timeout_ms / 1000.0
        self.context = context
        self.batch_objective_s = 0.02
        self.versions = {v.version: self._version(v) for v in config.versions}
        self.started = False
        self.split: Split | None = None
        self.watch: AnswerWatch | None = None

    def _version(self, config: VersionConfig) -> ModelVersion:
        version = ModelVersion(self.config, config, self.context)
        version.dispatcher.set_objective(self.batch_objective_s)
        return version

    def set_batch_objective(self, seconds: float) -> None:
        """The latency every version's batches aim under (unless configured explicitly)."""
        self.batch_objective_s = seconds
        for version in self.versions.values():
            version.dispatcher.set_objective(seconds)

    def version(self, name: str | None = None) -> ModelVersion:
        """The version called ``name``, or the current one; NotFound when there is none."""
        key = self.current if name in (None, "") else name
        assert key is not None
        found = self.versions.get(key)
        if found is None:
            known = ", ".join(self.versions)
            raise NotFound(f"model {self.name!r} has no version {key!r} (versions: {known})")
        return found

    def route(self, user: str | None) -> ModelVersion:
        """The version that answers a request naming none: by the split, else the current one.

        A user stays on one version while the split is unchanged; a request without a user
        falls where chance puts it, with the split's odds.
        """
        split = self.split
        if split is None:
            return self.versions[self.current]
        name = split.choose(user) if user is not None else split.choose_at(random.random())
        return self.versions[name]

    async def start(self) -> None:
        """Start every version; the first failure, once every version has finished starting."""
        self.started = True
        results = await asyncio.gather(
            *(version.start() for version in self.versions.values()), return_exceptions=True
        )
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            raise failure

    async def add_version(self, config: VersionConfig) -> ModelVersion:
        """Add a version (and start it, when the model runs).

        A version that fails to start is stopped and not added.
        """
        if config.version in self.versions:
            raise Conflict(f"model {self.name!r} already has version {config.version!r}")
        version = self._version(config)
        if self.started:
            try:
                await version.start()
            except BaseException:
                await version.stop()
                raise
        self.versions[config.version] = version
        return version

    def set_current(self, name: str) -> None:
        """Serve ``name`` when a request names no version (a rollout or a rollback)."""
        self.version(name)
        self.current = name

    async def stop(self) -> None:
        """Stop every version."""
        await asyncio.gather(*(version.stop() for version in self.versions.values()))

    def describe(self) -> dict[str, object]:
        """What the admin API shows of it."""
        return {
            "name": self.name,
            "version": self.current,
            "versions": [version.describe() for version in self.versions.values()],
        }
