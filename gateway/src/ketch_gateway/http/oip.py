"""The Open Inference Protocol's REST endpoints (``/v2/...``), JSON and binary tensors."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ketch import InvalidInputError, TensorSpec, validate_inputs
from ketch.range_parameters import range_parameters
from ketch.version import __version__
from ketch_gateway.errors import BadRequest, ServiceUnavailable
from ketch_gateway.gateway import Gateway
from ketch_gateway.http.bodies import INFER_BODY, json_response, read_body
from ketch_gateway.http.oip_codec import HEADER_LENGTH, encode_infer_response, parse_infer_request
from ketch_gateway.metrics import bounded_target

__all__ = ["oip_routes"]

SERVER_NAME = "ketch"
CACHE_REPORT = "ketch_cache"
"""Request parameter: true asks where each row's answer came from (response parameter)."""
EXTENSIONS = ["binary_tensor_data"]


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def server_metadata(request: Request) -> Response:
    """``GET /v2``."""
    return json_response({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})


async def live(request: Request) -> Response:
    """``GET /v2/health/live``: the process answers."""
    return json_response({"live": True})


async def ready(request: Request) -> Response:
    """``GET /v2/health/ready``: 200 when every model can answer, else 503.

    The answer shows the state store's state too, but a store that is down does not
    make the gateway unready: predictions go on without it, and taking every gateway
    out of its load balancer would turn a feedback outage into a prediction outage.
    """
    gateway = _gateway(request)
    store = gateway.store.describe()
    if gateway.ready():
        return json_response({"ready": True, "store": store})
    return json_response(
        {"ready": False, "error": "a model has no healthy replica", "store": store}, status=503
    )


def _version_of(request: Request) -> tuple[str, str | None]:
    return request.path_params["model"], request.path_params.get("version")


async def model_metadata(request: Request) -> Response:
    """``GET /v2/models/{m}[/versions/{v}]``: the wrapper's signature, as the protocol says."""
    name, version_name = _version_of(request)
    gateway = _gateway(request)
    model = gateway.models.find(name)
    signature = await model.version(version_name).require_signature()
    return json_response(
        {
            "name": model.name,
            "versions": list(model.versions),
            "platform": signature.platform,
            "inputs": [_tensor(spec) for spec in signature.inputs],
            "outputs": [_tensor(spec) for spec in signature.outputs],
        }
    )


def _tensor(spec: TensorSpec) -> dict[str, Any]:
    """A tensor's metadata; bounded dimensions' ranges in ``parameters``, as the wrapper's."""
    tensor: dict[str, Any] = {
        "name": spec.name,
        "datatype": spec.datatype,
        "shape": list(spec.shape),
    }
    parameters = range_parameters(spec)
    if parameters:
        tensor["parameters"] = parameters
    return tensor


async def model_ready(request: Request) -> Response:
    """``GET /v2/models/{m}[/versions/{v}]/ready``: 200 when a replica can answer, else 503."""
    name, version_name = _version_of(request)
    version = _gateway(request).models.find(name).version(version_name)
    if version.replicas.healthy():
        return json_response({"name": name, "ready": True})
    raise ServiceUnavailable(f"{version.label} has no healthy replica")


async def infer(request: Request) -> Response:
    """``POST /v2/models/{m}[/versions/{v}]/infer``, in JSON or with binary tensors."""
    name, version_name = _version_of(request)
    gateway = _gateway(request)
    with gateway.metrics.observe("model", bounded_target(name, gateway.models)):
        return await _infer(request, gateway, name, version_name)


async def _infer(
    request: Request, gateway: Gateway, name: str, version_name: str | None
) -> Response:
    model = gateway.models.find(name)
    version = model.version(version_name)
    body = await read_body(request, gateway.settings.max_body_bytes, INFER_BODY)
    parsed = parse_infer_request(body, request.headers.get(HEADER_LENGTH))
    signature = await version.require_signature()
    try:
        validate_inputs(signature, parsed.inputs)
    except InvalidInputError as error:
        raise BadRequest(str(error)) from None
    datatypes = signature.output_datatypes
    requested = parsed.outputs
    if requested is not None:
        unknown = [o.name for o in requested if o.name not in datatypes]
        if unknown:
            raise BadRequest(
                f"unknown output(s) {', '.join(map(repr, unknown))}; model {name!r} has "
                f"{', '.join(map(repr, datatypes))}"
            )
    report = parsed.parameters.get(CACHE_REPORT) is True
    prediction = await version.predictor.predict(
        parsed.inputs,
        timeout=model.timeout_s,
        outputs=[o.name for o in requested] if requested is not None else None,
    )
    outputs = prediction.outputs
    if requested is None:
        binary = list(outputs) if parsed.binary_output else []
    else:
        binary = [o.name for o in requested if o.binary]
    content, header_length = encode_infer_response(
        model=model.name,
        version=version.version,
        outputs=outputs,
        datatypes=datatypes,
        binary=binary,
        request_id=parsed.request_id,
        parameters={CACHE_REPORT: ",".join(prediction.sources or ["uncached"])} if report else None,
    )
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(header_length)},
    )


def oip_routes() -> list[Route]:
    """The routes, in matching order."""
    return [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{model}", model_metadata, methods=["GET"]),
        Route("/v2/models/{model}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{model}/infer", infer, methods=["POST"]),
        Route("/v2/models/{model}/versions/{version}", model_metadata, methods=["GET"]),
        Route("/v2/models/{model}/versions/{version}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{model}/versions/{version}/infer", infer, methods=["POST"]),
    ]
