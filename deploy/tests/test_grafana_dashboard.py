"""The Grafana dashboard names only metrics and labels that Ketch really exports.

Every panel's expression and every variable's query is read for its metric and
label names, which are then looked up in the live ``/metrics`` of a gateway and
of a ``ketch serve`` wrapper (with ``--metrics-port``) after real traffic.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import skops.io
from deploy_test_support import DEPLOY, named, render
from prometheus_client.parser import text_string_to_metric_families
from promql_names import names_in

from ketch import start_wrapper
from ketch_gateway import start_gateway

DASHBOARD = DEPLOY / "grafana" / "ketch-dashboard.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created", "_info")


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            found.append(query["query"])
    return found


class Exposition:
    """The metrics processes export: each sample name with the label names it carries."""

    def __init__(self) -> None:
        self.labels: dict[str, set[str]] = {}
        self.declared: set[str] = set()

    def add(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            self.declared.add(family.name)
            for sample in family.samples:
                self.labels.setdefault(sample.name, set()).update(sample.labels)

    def exports(self, metric: str) -> bool:
        if metric in self.labels:
            return True
        base = next((metric[: -len(s)] for s in SUFFIXES if metric.endswith(s)), metric)
        return base in self.declared


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
        return text


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory,
    digits_classifier: object,
    digits: tuple[np.ndarray, np.ndarray],
) -> Iterator[Exposition]:
    folder = tmp_path_factory.mktemp("grafana")
    model = folder / "digits.skops"
    skops.io.dump(digits_classifier, model)
    with start_wrapper(
        "sklearn", model, name="digits", extra_args=["--metrics-port", "0"]
    ) as wrapper:
        config = folder / "ketch.toml"
        config.write_text(
            f"""
[[models]]
name = "digits"
  [models.batching]
  max_queue = 64
  [models.cache]
  exact = true
  [[models.versions]]
  version = "1"
  addresses = ["{wrapper.address}"]

[[apps]]
name = "digits"
models = ["digits"]
latency_objective_ms = 1000
default_output = -1
"""
        )
        with start_gateway(config) as gateway, httpx.Client(base_url=gateway.url) as client:
            rows = digits[0]
            for index in (0, 1, 2, 0, 1):
                client.post("/apps/digits/predict", json={"input": rows[index].tolist()})
            client.post("/apps/digits/predict", json={"input": [1, 2]})
            tensor = {"name": "input", "shape": [2, 64], "datatype": "FP64"}
            tensor["data"] = rows[3:5].ravel().tolist()
            client.post("/v2/models/digits/infer", json={"inputs": [tensor]})
            exposition = Exposition()
            exposition.add(client.get("/metrics").text)
            exposition.add(scrape(f"http://{wrapper.ready.metrics}/metrics"))
            yield exposition


def test_the_dashboard_has_panels_for_what_the_issue_asks() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " | ".join(panel["title"].lower() for panel in dashboard["panels"])
    for subject in (
        "request rate",
        "p50 and p99 latency against the objective",
        "default outputs",
        "queue depth",
        "queue wait",
        "batch size against the aimd target",
        "cache hit rate",
        "replicas in rotation",
        "shed",
        "plugin latency",
        "process memory",
        "device memory",
    ):
        assert subject in titles, subject
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"app", "model", "version"} <= variables


@pytest.mark.parametrize("expression", expressions())
def test_every_expression_names_exported_metrics_and_labels(
    exported: Exposition, expression: str
) -> None:
    names = names_in(expression)
    assert names.metrics, f"no metric found in {expression}"
    missing = sorted(m for m in names.metrics if not exported.exports(m))
    assert not missing, f"not exported by the gateway or a wrapper: {missing}"
    carried: set[str] = set()
    for metric in names.metrics:
        labels = exported.labels.get(metric, set())
        carried |= labels
        if labels:
            unknown = names.matched.get(metric, set()) - labels
            assert not unknown, f"{metric} has no label(s) {sorted(unknown)}"
    if carried:
        assert names.grouped <= carried | {"instance", "job"}, (
            f"grouping on labels no metric carries: {sorted(names.grouped - carried)}"
        )


def test_the_extractor_reads_selectors_groupings_and_variables() -> None:
    names = names_in(
        'sum by (le, model) (rate(a_bucket{model=~"$m", x!="y}"}[5m])) '
        "/ ignoring (outcome) group_left b_total * on (instance) group_left (model) c"
    )
    assert names.metrics == {"a_bucket", "b_total", "c"}
    assert names.matched == {"a_bucket": {"model", "x"}}
    assert names.grouped == {"le", "model", "outcome", "instance"}
    values = names_in('label_values(ketch_queue_depth{model=~"$model"}, version)')
    assert values.metrics == {"ketch_queue_depth"}
    assert values.grouped == {"version"}


def test_the_configmap_carries_the_dashboard_for_grafanas_sidecar() -> None:
    objects = render(DEPLOY / "grafana")
    configmap: dict[str, Any] = named(objects, "ConfigMap", "ketch-grafana-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["ketch-dashboard.json"]) == json.loads(
        DASHBOARD.read_text()
    )


def test_wrappers_in_the_manifests_serve_metrics() -> None:
    objects = render(DEPLOY / "kubernetes" / "base")
    wrapper = named(objects, "Deployment", "ketch-digits-v1")
    [container] = wrapper["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--metrics-port") + 1] == "9090"
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container["ports"]
