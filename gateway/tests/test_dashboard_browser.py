"""The live dashboard in a real browser: a gateway with traffic, its page, and ``/metrics``.

Debian's headless Chromium, driven by Playwright, loads ``/dashboard`` from a
``ketch gateway`` process (with the wrapper it starts) while clients send
predictions; once the traffic stops, the numbers the page shows must be those
of ``/metrics``.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from browser_support import chromium
from gateway_test_support import ADMIN_TOKEN, metric

from ketch_gateway import start_gateway, write_config

TRAFFIC_SECONDS = 7.0
"""Long enough for the dashboard's 5 s history to draw its first chart points."""


def send_traffic(url: str, rows: np.ndarray, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        for index in range(2000):
            if stop.is_set():
                return
            row = rows[index % 40].tolist()
            client.post("/apps/digits/predict", json={"input": row})
            if index % 50 == 0:
                client.post("/apps/digits/predict", json={"input": [1.0, 2.0]})  # a 400


def test_the_dashboard_shows_what_metrics_say(
    tmp_path: Path, digits_model: Path, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    config = write_config(
        tmp_path,
        f"""
[gateway]
admin_token = "{ADMIN_TOKEN}"

[[models]]
name = "digits"
  [models.cache]
  exact = true
  [[models.versions]]
  version = "1"
  plugin = "sklearn"
  path = "{digits_model}"

[[apps]]
name = "digits"
models = ["digits"]
latency_objective_ms = 200
default_output = -1
""",
    )
    with start_gateway(config) as gateway, chromium(tmp_path / "profile") as browser:
        stop = threading.Event()
        traffic = threading.Thread(target=send_traffic, args=(gateway.url, digits[0], stop))
        traffic.start()
        page = browser.new_page()
        page.goto(f"{gateway.url}/dashboard?poll_ms=500")
        page.wait_for_selector("#token-form:not([hidden])")
        page.fill("#token", ADMIN_TOKEN)
        page.click("#token-form button")
        page.wait_for_selector('[data-testid="app-requests-digits"]')
        page.wait_for_selector('[data-series="app:digits"] polyline', timeout=30_000)
        time.sleep(max(0.0, TRAFFIC_SECONDS - 5.0))
        stop.set()
        traffic.join()
        stopped = time.time()
        page.wait_for_function(
            "stopped => Number(document.getElementById('status').dataset.generatedAt) > stopped",
            arg=stopped + 0.2,
        )

        def shown(testid: str) -> float:
            """The number an element shows ("exact 1,234", "16 rows": 1234, 16)."""
            text = page.inner_text(f'[data-testid="{testid}"]').replace(",", "")
            found = re.search(r"-?\d+(\.\d+)?", text)
            assert found is not None, f"{testid} shows no number: {text!r}"
            return float(found.group())

        url = gateway.url
        requests = metric(url, "ketch_requests_total", surface="app", target="digits")
        assert requests > 50
        assert shown("app-requests-digits") == requests
        assert shown("total-app") == requests
        assert shown("app-errors-digits") == metric(
            url, "ketch_request_errors_total", surface="app", target="digits"
        )
        assert shown("app-errors-digits") > 0
        assert shown("app-defaults-digits") == metric(
            url, "ketch_app_default_outputs_total", app="digits"
        )
        for outcome in ("exact", "miss"):
            lookups = metric(url, "ketch_cache_lookups_total", model="digits", outcome=outcome)
            assert lookups > 0
            assert shown(f"cache-{outcome}-digits-1") == lookups
        assert shown("queue-digits-1") == metric(url, "ketch_queue_depth", model="digits")
        [replica] = page.query_selector_all('[data-model="digits"] [data-replica]')
        address = replica.get_attribute("data-replica")
        assert address is not None
        assert replica.query_selector(".dot.ok") is not None
        assert metric(url, "ketch_replica_healthy", model="digits", replica=address) == 1
        target = metric(url, "ketch_batch_target_rows", model="digits", replica=address)
        assert shown(f"target-digits-1-{address}") == target
        assert "400" in page.inner_text("#errors")
        screenshot = tmp_path / "dashboard.png"
        page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 10_000
