"""Draw the pictures of docs/observability.md: the live dashboard, and one traced request.

Trains two digit classifiers, runs ``ketch gateway`` (which starts their
wrappers) with tracing to an OTLP collector in this process, sends traffic for a
while (predictions, feedback, a few bad requests), then, in Debian's headless
Chromium driven by Playwright, takes a screenshot of ``/dashboard`` and of a
timeline page drawn here from the spans of one request to the ensemble app and
of the batches linked to it (gateway and wrapper spans).

    python bench/observability_screenshots.py [--out docs/images] [--seconds 12]
"""

from __future__ import annotations

import argparse
import html
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import skops.io
from playwright.sync_api import Page, sync_playwright
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from ketch_conformance.otlp_collector import CollectedSpan, SpanCollector
from ketch_gateway import (
    app_table,
    config_text,
    model_table,
    start_gateway,
    version_table,
    write_config,
)

TOKEN = "screenshot-token"
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PREDICT = "POST /apps/{app}/predict"


def _config(folder: Path, collector: SpanCollector) -> Path:
    rows, labels = load_digits(return_X_y=True)
    rows = rows / 16.0
    for name, count in (("digits", 1200), ("digits-small", 60)):
        model = LogisticRegression(max_iter=2000).fit(rows[:count], labels[:count])
        skops.io.dump(model, folder / f"{name}.skops")
    probabilities = {"method": "predict_proba"}
    digits = version_table("sklearn", "digits.skops", count=2, options=probabilities)
    small = version_table("sklearn", "digits-small.skops", options=probabilities)
    text = config_text(
        gateway={"admin_token": TOKEN},
        tracing={"endpoint": collector.endpoint, "sample_ratio": 1.0},
        models=[
            model_table("digits", digits, cache={"exact": True}),
            model_table("digits-small", small),
        ],
        apps=[
            app_table("digits", ["digits"], latency_objective_ms=50, default_output=-1),
            app_table(
                "ensemble",
                ["digits", "digits-small"],
                latency_objective_ms=100,
                policy="exp4",
                classes=10,
                default_output=-1,
            ),
        ],
    )
    return write_config(folder, text)


def _traffic(url: str, seconds: float, stop: threading.Event, seed: int) -> None:
    rows, labels = load_digits(return_X_y=True)
    rows = rows / 16.0
    rng = np.random.default_rng(seed)
    until = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(20_000):
            if stop.is_set() or time.monotonic() > until:
                return
            index = int(rng.integers(1200, len(rows)))
            row = rows[index].tolist()
            client.post("/apps/digits/predict", json={"input": row})
            client.post("/apps/ensemble/predict", json={"input": row})
            client.post("/apps/ensemble/feedback", json={"input": row, "label": int(labels[index])})
            if rng.random() < 0.002:
                client.post("/apps/digits/predict", json={"input": [0.5, 0.5]})


def _request_trace(spans: list[CollectedSpan]) -> list[CollectedSpan]:
    """One ensemble request's spans, the batches linked to it, and what those batches caused."""
    requests = [
        s for s in spans if s.name == PREDICT and s.attributes.get("ketch.app") == "ensemble"
    ]
    request = requests[len(requests) // 2]
    chosen = [s for s in spans if s.trace_id == request.trace_id]
    batches = [s for s in spans if (request.trace_id, request.span_id) in s.links]
    for batch in batches:
        chosen += [s for s in spans if s.trace_id == batch.trace_id]
    return chosen


def _timeline_page(spans: list[CollectedSpan]) -> str:
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    width = max(end - start, 1)
    by_trace: dict[str, list[CollectedSpan]] = {}
    for span in sorted(spans, key=lambda s: (s.start_ns, s.name)):
        by_trace.setdefault(span.trace_id, []).append(span)
    rows = []
    for trace_id, members in by_trace.items():
        title = "request trace" if any(s.name == PREDICT for s in members) else "batch trace"
        rows.append(f'<div class="trace">{title} {trace_id[:16]}…</div>')
        for span in members:
            left = 100.0 * (span.start_ns - start) / width
            size = max(100.0 * (span.end_ns - span.start_ns) / width, 0.3)
            facts = ", ".join(
                f"{key.removeprefix('ketch.')}={value}"
                for key, value in span.attributes.items()
                if key
                in (
                    "ketch.model",
                    "ketch.batch.rows",
                    "ketch.batch.requests",
                    "ketch.replica",
                    "ketch.cache.miss",
                    "ketch.plugin",
                )
            )
            links = f" · linked to {len(span.links)} span(s)" if span.links else ""
            rows.append(
                f'<div class="row"><div class="label"><b>{html.escape(span.service)}</b> '
                f"{html.escape(span.name)}<br><small>{html.escape(facts)}{links}</small></div>"
                f'<div class="lane"><div class="bar {html.escape(span.service)}" '
                f'style="left:{left:.2f}%;width:{size:.2f}%"></div>'
                f'<span class="ms" style="left:{min(left + size, 92):.2f}%">'
                f"{span.duration_ms:.2f} ms</span></div></div>"
            )
    return f"""<!doctype html><meta charset="utf-8"><style>
body {{ font: 13px system-ui, sans-serif; margin: 16px; color: #1d2330; }}
h1 {{ font-size: 16px; margin: 0 0 8px; }}
.trace {{ margin: 12px 0 4px; font-weight: 600; color: #475569; }}
.row {{ display: flex; align-items: center; border-bottom: 1px solid #eef2f7; min-height: 34px; }}
.label {{ width: 430px; flex: none; }} small {{ color: #6b7280; }}
.lane {{ position: relative; flex: 1; height: 22px; background: #f8fafc; }}
.bar {{ position: absolute; top: 3px; height: 16px; border-radius: 3px; background: #2563eb; }}
.bar.ketch-serve {{ background: #d97706; }}
.ms {{ position: absolute; top: 3px; font-size: 11px; color: #334155; padding-left: 4px; }}
</style><h1>One request to the ensemble app, with the batches that served it
({(end - start) / 1e6:.1f} ms from first to last span)</h1>{"".join(rows)}"""


def _shoot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, SpanCollector() as collector:
        folder = Path(scratch)
        config = _config(folder, collector)
        env = {"OTEL_BSP_SCHEDULE_DELAY": "200"}
        with start_gateway(config, env=env) as gateway, sync_playwright() as playwright:
            stop = threading.Event()
            clients = [
                threading.Thread(target=_traffic, args=(gateway.url, args.seconds, stop, seed))
                for seed in range(4)
            ]
            for client in clients:
                client.start()
            browser = playwright.chromium.launch_persistent_context(
                str(folder / "profile"),
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
                viewport={"width": 1400, "height": 900},
            )
            page = browser.new_page()
            page.goto(f"{gateway.url}/dashboard?poll_ms=1000")
            page.fill("#token", TOKEN)
            page.click("#token-form button")
            page.wait_for_selector('[data-series="app:ensemble"] polyline', timeout=60_000)
            for client in clients:
                client.join()
            time.sleep(2.5)
            _shoot(page, args.out / "dashboard.png")
            spans = collector.wait_for(lambda found: len(found) > 100)
            time.sleep(1.0)
            timeline = browser.new_page()
            timeline.set_content(_timeline_page(_request_trace(collector.spans())))
            _shoot(timeline, args.out / "trace.png")
            browser.close()
            print(f"{len(spans)} spans collected")


if __name__ == "__main__":
    main()
