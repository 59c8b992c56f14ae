"""Models served inside the test process, and a gateway in front of them, without sockets.

A :class:`LocalReplica` answers the calls the gateway makes to a replica (its
``ReplicaClient`` protocol) from a :class:`ketch.ModelRuntime`, the core that
``ketch serve`` runs, and encodes requests and answers as the Open Inference
Protocol's messages, as a wrapper does: only the gRPC transport is left out.
Predictions run on a pool of threads, as in a wrapper, so that a slow model
never holds up the event loop, each in a :class:`ketch.CallScope` that carries
the call's deadline and ends when the caller gives up (as ``ketch serve`` does
with the gRPC call's). :func:`gateway_client` serves a configuration
whose versions name these models' addresses through Starlette's TestClient,
which runs the gateway's start and stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx
import numpy as np
from starlette.testclient import TestClient

from ketch import (
    CallCancelled,
    CallScope,
    Capabilities,
    DeviceUnavailableError,
    InvalidInputError,
    KetchError,
    ModelMetadata,
    ModelNotFoundError,
    ModelNotReadyError,
    ModelRuntime,
    ModelSpec,
    ObserveResult,
    WrapperCallError,
    select_framework,
    serving_call,
)
from ketch.wire import decode_tensors, infer_request, infer_response, response_arrays
from ketch_conformance.pacing import Pacing
from ketch_gateway import Gateway, create_app, parse_config
from ketch_gateway.serving.replicas import ReplicaClient

Result = TypeVar("Result")

_CODES = (
    (InvalidInputError, "INVALID_ARGUMENT"),
    (ModelNotFoundError, "NOT_FOUND"),
    (ModelNotReadyError, "UNAVAILABLE"),
    (DeviceUnavailableError, "FAILED_PRECONDITION"),
)


def _call_error(error: Exception) -> WrapperCallError:
    """The error a wrapper answers for ``error``: its gRPC status name and message."""
    if isinstance(error, CallCancelled):
        code = "DEADLINE_EXCEEDED" if error.expired else "CANCELLED"
        return WrapperCallError(code, str(error))
    code = next((name for kind, name in _CODES if isinstance(error, kind)), "INTERNAL")
    message = str(error) if isinstance(error, KetchError) else f"{type(error).__name__}: {error}"
    return WrapperCallError(code, message)


@dataclasses.dataclass
class LocalModel:
    """One model served in process; ``down`` (or no runtime) answers as a wrapper that is gone."""

    runtime: ModelRuntime | None
    down: bool = False


class LocalReplica(ReplicaClient):
    """A replica's calls, answered by a model in this process."""

    def __init__(self, served: LocalModel, pool: ThreadPoolExecutor) -> None:
        self.served = served
        self.pool = pool

    def _runtime(self, model: str | None) -> ModelRuntime:
        runtime = self.served.runtime
        if self.served.down or runtime is None:
            raise WrapperCallError("UNAVAILABLE", "failed to connect to all addresses")
        if model not in (None, "", runtime.name):
            raise WrapperCallError(
                "NOT_FOUND", f"unknown model {model!r}; this wrapper serves {runtime.name!r}"
            )
        return runtime

    async def _in_thread(self, call: Callable[[], Result], timeout: float | None) -> Result:
        scope = CallScope.from_time_remaining(timeout)

        def in_scope() -> Result:
            with serving_call(scope):
                return call()

        work = asyncio.get_running_loop().run_in_executor(self.pool, in_scope)
        try:
            return await asyncio.wait_for(work, timeout)
        except TimeoutError:
            scope.cancel("its deadline passed")
            raise WrapperCallError("DEADLINE_EXCEEDED", "Deadline Exceeded") from None
        except asyncio.CancelledError:
            scope.cancel("the caller cancelled the call")
            raise
        except WrapperCallError:
            raise
        except Exception as error:
            raise _call_error(error) from None

    async def health(self, service: str = "") -> str:
        """SERVING, or UNAVAILABLE as a call error while the model is down."""
        self._runtime(None)
        return "SERVING"

    async def model_metadata(self, model: str | None = None, version: str = "") -> ModelMetadata:
        """The model's signature, as ModelMetadata carries it."""
        runtime = self._runtime(model)
        signature = runtime.signature
        return ModelMetadata(
            name=runtime.name,
            versions=(runtime.version,),
            platform=signature.platform or runtime.framework.name,
            inputs=tuple(signature.inputs),
            outputs=tuple(signature.outputs),
        )

    async def capabilities(self, model: str | None = None, version: str = "") -> Capabilities:
        """The declared capabilities, with online learning as the runtime allows it."""
        runtime = self._runtime(model)
        return dataclasses.replace(runtime.signature.capabilities, observe=runtime.observes)

    async def infer(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        model: str | None = None,
        version: str = "",
        outputs: Sequence[str] | None = None,
        request_id: str = "",
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
    ) -> dict[str, np.ndarray]:
        """The outputs, through the ModelInfer messages a wrapper reads and writes.

        ``metadata`` (the batch's trace context) is what a transport would carry; it
        is remembered in :attr:`last_metadata`.
        """
        self.last_metadata = tuple(metadata or ())
        runtime = self._runtime(model)
        request = infer_request(inputs, model=runtime.name, outputs=outputs)

        def answer() -> dict[str, np.ndarray]:
            decoded = decode_tensors(request.inputs, request.raw_input_contents)
            produced = runtime.predict(decoded, [o.name for o in request.outputs] or None)
            response = infer_response(
                produced,
                runtime.signature.output_datatypes,
                model=runtime.name,
                version=runtime.version,
                request_id=request_id,
            )
            return response_arrays(response)

        return await self._in_thread(answer, timeout)

    async def observe(
        self,
        inputs: Mapping[str, np.ndarray],
        labels: np.ndarray,
        *,
        model: str | None = None,
        version: str = "",
    ) -> ObserveResult:
        """Teach the model; whether it changed."""
        runtime = self._runtime(model)
        changed = await self._in_thread(lambda: runtime.observe(inputs, labels), None)
        return ObserveResult(changed, len(labels))

    async def close(self) -> None:
        """Nothing to release: the model belongs to the LocalModels."""


class LocalModels:
    """Models served in this process, each at an address of its own.

    :meth:`connect` is the gateway's way to reach them (``Gateway(connect=...)``).
    """

    def __init__(self, workers: int = 16) -> None:
        self.served: dict[str, LocalModel] = {}
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="local-model")
        self._ports = itertools.count(1)

    def serve(
        self,
        name: str,
        plugin: str,
        path: Path,
        *,
        version: str = "1",
        options: Mapping[str, str] | None = None,
        max_batch: int | None = None,
        predict_delay: float | None = None,
        implementation: object | None = None,
    ) -> str:
        """Load a model with ``plugin`` (slowed by ``predict_delay`` seconds); its address.

        ``implementation`` is the framework plugin object itself, which ``plugin`` then
        only names (a test's own plugin).
        """
        cross_cutting = [Pacing(predict_delay)] if predict_delay else []
        framework = select_framework(
            plugin, plugin=implementation, cross_cutting=cross_cutting, environ={}
        )
        spec = ModelSpec.from_path(path, name=name, version=version, options=options)
        runtime = ModelRuntime.load(framework, spec, max_batch=max_batch)
        address = f"local-{name}:{next(self._ports)}"
        self.served[address] = LocalModel(runtime)
        return address

    def connect(self, address: str) -> ReplicaClient:
        """The replica at ``address`` (it answers as gone when nothing is served there)."""
        return LocalReplica(self.served.get(address) or LocalModel(None), self.pool)

    def close(self) -> None:
        """Unload the models and stop the threads."""
        self.pool.shutdown(wait=True)
        for served in self.served.values():
            if served.runtime is not None:
                served.runtime.unload()


@contextlib.contextmanager
def gateway_client(text: str, folder: Path, models: LocalModels) -> Iterator[httpx.Client]:
    """A started gateway for the configuration ``text`` (in ``folder``), and a client for it."""
    config = parse_config(text, str(folder / "ketch.toml"), folder)
    gateway = Gateway(config, connect=models.connect)
    with TestClient(create_app(gateway), raise_server_exceptions=False) as client:
        yield client
