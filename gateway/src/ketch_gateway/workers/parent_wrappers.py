"""The managed wrappers of ``--workers N``, started once by the parent for every worker.

Were each worker to start the configuration's wrappers, a version with ``count = 2``
would run 2 * N copies of its model. The parent starts and supervises them instead,
and each worker joins them as replicas. A restarted wrapper comes back on its port
(``keep_port``), so the addresses the workers were given stay right.
"""

from __future__ import annotations

import asyncio
import logging

from ketch_gateway.control.config import GatewayConfig
from ketch_gateway.control.supervisor import ManagedWrapper, RestartPolicy
from ketch_gateway.gateway import wrapper_start_gate
from ketch_gateway.workers.role import ParentWrappers

__all__ = ["ParentWrapperSet"]

_log = logging.getLogger(__name__)


class ParentWrapperSet:
    """Every managed wrapper the configuration file asks for, started and supervised here."""

    def __init__(self, config: GatewayConfig, restart: RestartPolicy | None = None) -> None:
        gate = wrapper_start_gate(config)
        self.wrappers: dict[tuple[str, str], list[ManagedWrapper]] = {}
        for model in config.models:
            for version in model.versions:
                launch = version.launch
                if launch is None or not launch.count:
                    continue
                self.wrappers[(model.name, version.version)] = [
                    ManagedWrapper(
                        f"{model.name} v{version.version} #{index}",
                        model=model.name,
                        version=version.version,
                        launch=launch,
                        on_ready=lambda address: None,
                        on_exit=lambda: None,
                        policy=restart,
                        gate=gate,
                        keep_port=True,
                    )
                    for index in range(launch.count)
                ]

    def _all(self) -> list[ManagedWrapper]:
        return [wrapper for wrappers in self.wrappers.values() for wrapper in wrappers]

    async def start(self) -> None:
        """Start them all; on the first failure, stop those started and raise it."""
        results = await asyncio.gather(
            *(wrapper.start() for wrapper in self._all()), return_exceptions=True
        )
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            await self.stop()
            raise failure

    def addresses(self) -> ParentWrappers:
        """Where they listen, by model and version: what each worker joins."""
        found: dict[str, dict[str, tuple[str, ...]]] = {}
        for (model, version), wrappers in self.wrappers.items():
            addresses = tuple(w.address for w in wrappers if w.address is not None)
            found.setdefault(model, {})[version] = addresses
        return found

    async def stop(self) -> None:
        """Stop every wrapper (SIGTERM, then SIGKILL after their grace)."""
        await asyncio.gather(*(wrapper.stop() for wrapper in self._all()))
