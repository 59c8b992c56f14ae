"""``GET /metrics`` in Prometheus text format, and ``GET /openapi.json``."""

from __future__ import annotations

import re
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


def samples(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_errors_and_latency_are_counted(http: httpx.Client, digits: Any) -> None:
    before = samples(http)
    row = digits[0][0].tolist()
    for _ in range(3):
        assert http.post("/apps/digits/predict", json={"input": row}).status_code == 200
    assert http.post("/apps/digits/predict", json={"input": [1]}).status_code == 400
    assert http.post("/apps/nope/predict", json={"input": row}).status_code == 404
    after = samples(http)

    def grew(name: str, amount: float, **labels: str) -> None:
        assert value(after, name, **labels) - value(before, name, **labels) == amount, (
            name,
            labels,
        )

    grew("ketch_requests_total", 3, surface="app", target="digits", status="200")
    grew("ketch_requests_total", 1, surface="app", target="digits", status="400")
    grew("ketch_request_errors_total", 1, surface="app", target="digits", status="400")
    grew("ketch_requests_total", 1, surface="app", target="unknown", status="404")
    grew("ketch_request_latency_seconds_count", 4, surface="app", target="digits")
    assert value(after, "ketch_requests_in_flight", surface="app") == 0


def test_model_requests_and_defaults_are_counted(http: httpx.Client) -> None:
    before = samples(http)
    http.post("/apps/slow-with-default/predict", json={"input": [0.0] * 64})
    request = {
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP64", "data": [0.0] * 64}]
    }
    http.post("/v2/models/digits/infer", json=request)
    after = samples(http)
    assert (
        value(after, "ketch_app_default_outputs_total", app="slow-with-default")
        - value(before, "ketch_app_default_outputs_total", app="slow-with-default")
        == 1
    )
    assert (
        value(after, "ketch_requests_total", surface="model", target="digits", status="200")
        - value(before, "ketch_requests_total", surface="model", target="digits", status="200")
        == 1
    )


def test_unknown_models_share_one_series(http: httpx.Client) -> None:
    before = samples(http)
    request = {"inputs": [{"name": "input", "shape": [1, 1], "datatype": "FP64", "data": [0]}]}
    for name in ("nope-1", "nope-2", "nope-3"):
        assert http.post(f"/v2/models/{name}/infer", json=request).status_code == 404
    assert http.post("/v2/models/digits/infer", content=b"{bad").status_code == 400
    after = samples(http)
    assert not any(dict(labels).get("target", "").startswith("nope") for _, labels in after)
    unknown = {"surface": "model", "target": "unknown", "status": "404"}
    assert (
        value(after, "ketch_requests_total", **unknown)
        - value(before, "ketch_requests_total", **unknown)
        == 3
    )
    assert (
        value(after, "ketch_request_errors_total", **unknown)
        - value(before, "ketch_request_errors_total", **unknown)
        == 3
    )
    bad = {"surface": "model", "target": "digits", "status": "400"}
    assert (
        value(after, "ketch_request_errors_total", **bad)
        - value(before, "ketch_request_errors_total", **bad)
        == 1
    )
    assert value(after, "ketch_requests_in_flight", surface="model") == 0


def test_openapi_describes_the_apps_and_admin_api(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    paths = document["paths"]
    for path in (
        "/apps/{app}/predict",
        "/apps/{app}/feedback",
        "/admin/models",
        "/admin/apps/{app}/links",
        "/apps/digits/predict",
        "/v2/models/digits/infer",
        "/v2/models/digits/versions/1/infer",
    ):
        assert path in paths
    own = paths["/v2/models/digits/versions/1/infer"]["post"]["requestBody"]
    tensor = own["content"]["application/json"]["schema"]["properties"]["inputs"]["items"]
    assert tensor["properties"]["shape"] == {"const": [1, 64]}
    assert paths["/admin/models"]["post"]["security"] == [{"bearer": []}]
    for path, operations in paths.items():
        declared = set(re.findall(r"{(\w+)}", path))
        for operation in operations.values():
            names = {p["name"] for p in operation.get("parameters", [])}
            assert names == declared, path
            for reference in re.findall(
                r'"\$ref": "#/components/schemas/(\w+)"', str(operation).replace("'", '"')
            ):
                assert reference in document["components"]["schemas"]
