"""The gateway against its own OpenAPI document, with schemathesis (a bounded, seeded run).

Bodies valid against the document must be accepted, every answer's status, headers
and body must be documented, no request may get a 5xx, and a method a path does
not take gets 405 with an ``Allow`` header. The admin API, whose bodies name files
and addresses that a schema cannot check, is held to "no 5xx, documented status".
Destructive admin calls (DELETE, PUT) are left out so the run stays on one gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_test_support import ADMIN_TOKEN
from hypothesis import HealthCheck, Phase, given, settings

from ketch_gateway import (
    app_table,
    config_text,
    model_table,
    start_gateway,
    version_table,
    write_config,
)

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import checks  # noqa: E402

PUBLIC_CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.positive_data_acceptance,
]
ADMIN_CHECKS = [checks.not_a_server_error, checks.status_code_conformance]
EXAMPLES = 12
"""Generated requests per operation: enough to reach every branch of each schema."""


@pytest.fixture(scope="module")
def conformance_gateway(
    tmp_path_factory: pytest.TempPathFactory, digits_model: Path, topics_model: Path
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("conformance")
    options = {"method": "predict,predict_proba"}
    text = config_text(
        gateway={"admin_token": ADMIN_TOKEN, "max_body_bytes": 1_000_000},
        models=[
            model_table("digits", version_table("sklearn", digits_model, options=options)),
            model_table("topics", version_table("sklearn", topics_model)),
        ],
        apps=[
            app_table("digits", ["digits"], 5000, default_output=-1),
            app_table("topics", ["topics"], 5000),
        ],
    )
    config = write_config(folder, text)
    with start_gateway(config) as gateway:
        yield gateway.url


def exercise(operation: Any, url: str) -> None:
    """Send ``EXAMPLES`` seeded requests generated for ``operation``; checks raise on a fault."""
    admin = operation.path.startswith("/admin")

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any) -> None:
        case.call_and_validate(
            base_url=url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            checks=ADMIN_CHECKS if admin else PUBLIC_CHECKS,
        )

    send()


def test_the_gateway_keeps_to_its_openapi_document(conformance_gateway: str) -> None:
    document = schemathesis.openapi.from_url(f"{conformance_gateway}/openapi.json")
    operations = [result.ok() for result in document.get_all_operations()]
    exercised = [op for op in operations if op.method.upper() not in ("DELETE", "PUT")]
    assert len(exercised) > 20
    failures = []
    for operation in exercised:
        try:
            exercise(operation, conformance_gateway)
        except Exception as error:  # every operation's faults, not only the first's
            failures.append(f"{operation.label}: {error}")
    assert not failures, "\n\n".join(failures)
