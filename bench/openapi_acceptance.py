"""Schema-valid bodies the gateway refuses: schemathesis over ``/openapi.json``, counted.

Starts a real gateway (a digits model and its app, a text model and its app), reads
its OpenAPI document with schemathesis, and sends ``--examples`` seeded, schema-valid
requests to each public operation (the Apps API, the Open Inference Protocol,
health, metadata, ``/metrics``). Prints, per operation and in all, how many were
sent, how many schemathesis's ``positive_data_acceptance`` check failed (a body
valid against the document that the gateway refused), and how many got a 5xx.
Issue 15 counted 11 such rejections.

    python bench/openapi_acceptance.py [--examples 50]

To measure a gateway from before a change, run it with that checkout's sources
first on the path: ``PYTHONPATH=OLD/gateway/src:OLD/sdk/src python bench/...``.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks
from schemathesis.core.failures import Failure, FailureGroup

from ketch_gateway import start_gateway

APPS = ("digits", "topics")
"""The apps, each with a model of the same name (version 1)."""
PUBLIC = ("GET", "POST")
"""The methods measured: the public API's; admin operations and changes are left out."""


def prepare(folder: Path) -> Path:
    """Train the two models and write the gateway's configuration; its path."""
    import skops.io
    from sklearn.datasets import load_digits
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rows, labels = load_digits(return_X_y=True)
    digits = folder / "digits.skops"
    skops.io.dump(LogisticRegression(max_iter=500).fit(rows / 16, labels), digits)
    texts = ["the cat sat", "a dog ran", "cats purr", "dogs bark", "the cat ran", "a dog sat"]
    topics = folder / "topics.skops"
    classifier = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=500))
    skops.io.dump(classifier.fit(texts, [0, 1, 0, 1, 0, 1]), topics)
    from ketch_gateway import app_table, config_text, model_table, version_table, write_config

    options = {"method": "predict,predict_proba"}
    text = config_text(
        gateway={"admin_token": "bench-token", "max_body_bytes": 1_000_000, "log_level": "error"},
        models=[
            model_table("digits", version_table("sklearn", digits, options=options)),
            model_table("topics", version_table("sklearn", topics)),
        ],
        apps=[
            app_table("digits", ["digits"], 5000, default_output=-1),
            app_table("topics", ["topics"], 5000),
        ],
    )
    config = write_config(folder, text)
    return config


def targets(operation: Any, paths: set[str]) -> list[dict[str, str]]:
    """The path parameters to try for ``operation``: the gateway's real apps and models.

    A generated name is a 404, which tells nothing about the bodies the document
    allows, so a generic path is tried with each real app or model name, except
    those the document gives a path of their own (which is tried instead); with
    none left, with generated names.
    """
    names = {parameter.name for parameter in operation.path_parameters}
    if not names:
        return [{}]
    choices = []
    for app in APPS:
        values = (("app", app), ("model", app), ("version", "1"))
        path = {name: value for name, value in values if name in names}
        if operation.path.format(**path) not in paths:
            choices.append(path)
    return choices or [{}]


def measure(operation: Any, url: str, examples: int, path: dict[str, str]) -> Counter[str]:
    """Send ``examples`` seeded schema-valid requests; counts of sent, refused, 5xx."""
    counts: Counter[str] = Counter()

    @given(case=operation.as_strategy(path_parameters=path or None))
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any) -> None:
        response = case.call(base_url=url)
        counts["sent"] += 1
        if response.status_code >= 500:
            counts["5xx"] += 1
        try:
            case.validate_response(response, checks=[checks.positive_data_acceptance])
        except (Failure, FailureGroup):
            counts["refused"] += 1

    send()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50, help="requests per operation")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, start_gateway(prepare(Path(folder))) as gateway:
        document = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")
        operations: list[Any] = [
            result.ok()  # type: ignore[union-attr]
            for result in document.get_all_operations()
        ]
        paths = {operation.path for operation in operations}
        total: Counter[str] = Counter()
        for operation in operations:
            if operation.path.startswith("/admin") or operation.method.upper() not in PUBLIC:
                continue
            for path in targets(operation, paths):
                counts = measure(operation, gateway.url, arguments.examples, path)
                total += counts
                label = f"{operation.label} {' '.join(path.values())}"
                print(
                    f"{label:52} sent {counts['sent']:4}  refused {counts['refused']:3}"
                    f"  5xx {counts['5xx']:3}"
                )
        print(
            f"{'all public operations':52} sent {total['sent']:4}  refused {total['refused']:3}"
            f"  5xx {total['5xx']:3}"
        )


if __name__ == "__main__":
    main()
