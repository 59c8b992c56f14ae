// Ketch gateway dashboard: polls /dashboard/data and draws it. No framework, no build step.
"use strict";

const POLL_MS = Number(new URLSearchParams(location.search).get("poll_ms")) || 2000;
const TOKEN_KEY = "ketch-dashboard-token";
const ERRORS_SHOWN = 12;
let timer = null;

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function count(value) {
  return Number.isInteger(value) ? value.toLocaleString("en") : Math.round(value).toLocaleString("en");
}

function ms(value) {
  return value === null || value === undefined ? "–" : `${value.toFixed(value < 10 ? 2 : 1)} ms`;
}

function percent(value) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)}%`;
}

function tile(label, value, testid) {
  return el("div", { class: "tile" },
    el("div", { class: "value", "data-testid": testid }, value),
    el("div", { class: "label" }, label));
}

function line(points, key, scale, width, height, color, dash) {
  const usable = points.map((p, i) => [i, p[key]]).filter(([, v]) => v !== null && v !== undefined);
  if (usable.length === 0) return null;
  const step = points.length > 1 ? width / (points.length - 1) : 0;
  const coords = usable.map(([i, v]) => `${(i * step).toFixed(1)},${(height - (v / scale) * height).toFixed(1)}`);
  const svgNS = "http://www.w3.org/2000/svg";
  const path = document.createElementNS(svgNS, "polyline");
  path.setAttribute("points", coords.join(" "));
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", color);
  path.setAttribute("stroke-width", "1.6");
  if (dash) path.setAttribute("stroke-dasharray", dash);
  return path;
}

function chart(series, objectives) {
  const points = series.points;
  const width = 300, height = 80;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const rateScale = Math.max(1e-9, ...points.map((p) => p.rate)) * 1.1;
  const objective = series.surface === "app" ? objectives[series.target] : undefined;
  const latencies = points.flatMap((p) => [p.p50_ms, p.p99_ms]).filter((v) => v !== null);
  const latencyScale = Math.max(1e-9, objective || 0, ...latencies) * 1.1;
  for (const [key, scale, color, dash] of [
    ["rate", rateScale, "var(--rate)", null],
    ["p50_ms", latencyScale, "var(--p50)", null],
    ["p99_ms", latencyScale, "var(--p99)", null],
  ]) {
    const drawn = line(points, key, scale, width, height, color, dash);
    if (drawn) svg.append(drawn);
  }
  if (objective) {
    const y = (height - (objective / latencyScale) * height).toFixed(1);
    const limit = document.createElementNS(svgNS, "line");
    for (const [k, v] of [["x1", 0], ["x2", width], ["y1", y], ["y2", y], ["stroke", "var(--objective)"], ["stroke-dasharray", "4 3"]]) {
      limit.setAttribute(k, v);
    }
    svg.append(limit);
  }
  const last = points[points.length - 1] || {};
  const legend = el("div", { class: "legend" },
    el("span", {}, el("i", { style: "background: var(--rate)" }), `${(last.rate || 0).toFixed(1)} req/s`),
    el("span", {}, el("i", { style: "background: var(--p50)" }), `p50 ${ms(last.p50_ms)}`),
    el("span", {}, el("i", { style: "background: var(--p99)" }), `p99 ${ms(last.p99_ms)}`),
    objective ? el("span", {}, el("i", { style: "background: var(--objective)" }), `objective ${ms(objective)}`) : null);
  return el("div", { class: "chart", "data-series": `${series.surface}:${series.target}` },
    el("h3", {}, `${series.surface} ${series.target}`), svg, legend);
}

function learnt(summary) {
  if (!summary) return el("span", { class: "muted" }, "–");
  const box = el("div", { class: "learnt" });
  for (const [model, value] of Object.entries(summary.models)) {
    if (summary.kind === "bandit") {
      const reward = value.mean_reward === null ? "–" : value.mean_reward.toFixed(3);
      box.append(el("div", { "data-learnt": model }, `${model}: ${value.plays} plays, mean reward ${reward}`));
    } else {
      const width = Math.max(1, Math.round(Math.abs(value) * 80));
      box.append(el("div", { "data-learnt": model },
        el("span", { class: "bar", style: `width:${width}px` }), ` ${model}: ${value.toFixed(3)}`));
    }
  }
  return box;
}

function renderApps(apps) {
  const body = document.querySelector("#apps tbody");
  body.replaceChildren(...apps.map((app) => el("tr", { "data-app": app.name },
    el("td", {}, app.name),
    el("td", {}, app.policy),
    el("td", { class: "num" }, ms(app.latency_objective_ms)),
    el("td", {}, app.models.join(", ")),
    el("td", { class: "num", "data-testid": `app-requests-${app.name}` }, count(app.requests)),
    el("td", { class: "num", "data-testid": `app-errors-${app.name}` }, count(app.errors)),
    el("td", { class: "num", "data-testid": `app-defaults-${app.name}` }, count(app.default_outputs)),
    el("td", { class: "num" }, ms(app.answer_reserve_ms)),
    el("td", {}, learnt(app.learnt)))));
}

function renderModels(models) {
  const rows = [];
  for (const model of models) {
    for (const version of model.versions) {
      const id = `${model.name}-${version.version}`;
      const replicas = el("div", {});
      for (const replica of version.replicas) {
        replicas.append(el("div", { class: "replica", "data-replica": replica.address },
          el("span", { class: `dot ${replica.healthy ? "ok" : "bad"}`, title: replica.healthy ? "in rotation" : "not answering" }),
          `${replica.address}${replica.managed ? " (managed)" : ""}`,
          el("span", { class: "muted", "data-testid": `target-${id}-${replica.address}` },
            replica.target_rows === null || replica.target_rows === undefined ? "" : ` ${replica.target_rows} rows`)));
      }
      const lookups = version.cache.lookups;
      rows.push(el("tr", { "data-model": model.name, "data-version": version.version },
        el("td", {}, model.name),
        el("td", {}, version.version, version.current ? el("span", { class: "muted" }, " (current)") : null),
        el("td", {}, version.batching || "–"),
        el("td", { class: "num", "data-testid": `queue-${id}` }, count(version.queue_depth)),
        el("td", {}, replicas),
        el("td", { class: "num", "data-testid": `hit-rate-${id}` }, version.cache.enabled ? percent(version.cache.hit_rate) : "off"),
        el("td", { class: "num" }, ...["exact", "approximate", "coalesced", "miss"].map((outcome) =>
          el("div", { "data-testid": `cache-${outcome}-${id}` }, `${outcome} ${count(lookups[outcome])}`))),
        el("td", { class: "num", "data-testid": `shed-${id}` }, count(version.shed))));
    }
  }
  document.querySelector("#models tbody").replaceChildren(...rows);
}

function renderErrors(errors) {
  const list = document.getElementById("errors");
  if (errors.length === 0) {
    list.replaceChildren(el("li", { class: "muted" }, "none"));
    return;
  }
  const shown = errors.slice(0, ERRORS_SHOWN).map((error) => el("li", { "data-kind": error.kind },
    el("span", { class: "when" }, new Date(error.time * 1000).toLocaleTimeString("en-GB")),
    error.status ? el("strong", {}, `${error.status} `) : null,
    el("span", { class: "muted" }, `${error.where}: `),
    error.message));
  if (errors.length > ERRORS_SHOWN) {
    shown.push(el("li", { class: "muted" }, `and ${errors.length - ERRORS_SHOWN} earlier (GET /dashboard/data has them all)`));
  }
  list.replaceChildren(...shown);
}

function render(data) {
  const gateway = data.gateway;
  const uptime = gateway.started_at ? Math.round(data.generated_at - gateway.started_at) : 0;
  document.getElementById("gateway-summary").textContent =
    `version ${gateway.version} · up ${uptime} s · tracing ${gateway.tracing ? "on" : "off"}`;
  const requests = gateway.requests;
  document.getElementById("totals").replaceChildren(
    tile("app requests", count(requests.app || 0), "total-app"),
    tile("model (OIP) requests", count(requests.model || 0), "total-model"),
    tile("feedback", count(requests.feedback || 0), "total-feedback"),
    tile("apps", data.apps.length, "app-count"),
    tile("models", data.models.length, "model-count"));
  const objectives = Object.fromEntries(data.apps.map((app) => [app.name, app.latency_objective_ms]));
  const charts = data.history.series.map((series) => chart(series, objectives));
  document.getElementById("charts").replaceChildren(
    ...(charts.length ? charts : [el("p", { class: "muted" }, `the first points appear after ${data.history.interval_s} s of traffic`)]));
  renderApps(data.apps);
  renderModels(data.models);
  renderErrors(data.errors);
  document.getElementById("status").textContent =
    `updated ${new Date(data.generated_at * 1000).toLocaleTimeString("en-GB")}`;
  document.getElementById("status").dataset.generatedAt = String(data.generated_at);
  document.getElementById("content").hidden = false;
}

async function poll() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  try {
    const response = await fetch("/dashboard/data", { headers, cache: "no-store" });
    const body = await response.json();
    if (response.status === 401 || response.status === 403) {
      document.getElementById("token-form").hidden = false;
      document.getElementById("token-error").textContent = token ? body.error : "";
      document.getElementById("status").textContent = "waiting for the admin token";
      return;
    }
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    document.getElementById("token-form").hidden = true;
    render(body);
  } catch (error) {
    document.getElementById("status").textContent = `cannot reach the gateway: ${error.message}`;
  } finally {
    clearTimeout(timer);
    timer = setTimeout(poll, POLL_MS);
  }
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  poll();
});

poll();
