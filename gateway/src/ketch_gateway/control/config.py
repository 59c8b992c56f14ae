"""The gateway's configuration: one TOML file of settings, models and apps.

Validated completely on load: an unknown key, a missing field, a wrong type, a
model file that does not exist, an app linked to a model that is not there: each
is a :class:`ConfigError` naming the file, the line, the key and the problem, and
the gateway does not start half-configured. The admin API reads models and apps
from JSON with the same rules.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from ketch import installed_plugins
from ketch.telemetry.settings import TracingSettings
from ketch_gateway.control.admin_policy import AdminPolicy, is_import_reference, read_admin_policy
from ketch_gateway.control.config_reader import ConfigError, Reader
from ketch_gateway.control.security_config import (
    DEFAULT_USER_STATE_TTL_S,
    LIMIT_KEYS,
    CorsConfig,
    ServerLimits,
    TlsConfig,
    WrapperTlsConfig,
    read_api_keys,
    read_cors,
    read_server_limits,
    read_tls,
    read_wrapper_tls,
)
from ketch_gateway.control.toml_lines import TomlLines
from ketch_gateway.control.tracing_config import read_tracing
from ketch_gateway.control.wrapper_env import WrapperSettings, read_wrapper_settings
from ketch_gateway.correction.registry import PASS_THROUGH, POLICIES, TASKS
from ketch_gateway.rollouts.config import (
    RolloutConfig,
    ShadowConfig,
    read_rollout,
    read_shadow,
    read_split,
)
from ketch_gateway.serving.discovery import check_address
from ketch_gateway.stores.contract import is_redis_location

__all__ = [
    "BATCH_POLICIES",
    "DASHBOARD_ACCESS",
    "DEFAULT_ADMIN_TOKEN_VARIABLE",
    "WORKER_SOCKETS",
    "AppConfig",
    "BatchingConfig",
    "CacheConfig",
    "ConfigError",
    "GatewayConfig",
    "GatewaySettings",
    "LaunchSpec",
    "ModelConfig",
    "VersionConfig",
    "load_config",
    "parse_config",
    "read_app",
    "read_model",
    "read_version",
    "state_location",
]

BATCH_POLICIES: Final = ("aimd", "fixed", "none")
ROLLOUT_KEYS: Final = frozenset({"shadow", "split", "rollout"})
DASHBOARD_ACCESS: Final = ("token", "open", "off")
WORKER_SOCKETS: Final = ("shared", "reuseport")
DEFAULT_ADMIN_TOKEN_VARIABLE: Final = "KETCH_ADMIN_TOKEN"


@dataclass(frozen=True)
class LaunchSpec:
    """Wrappers the gateway starts and supervises itself: ``count`` copies of ``ketch serve``."""

    plugin: str
    path: Path
    device: str = "cpu"
    count: int = 1
    options: Mapping[str, str] = field(default_factory=dict)
    max_batch: int | None = None


LAUNCH_KEYS: Final = frozenset(spec.name for spec in fields(LaunchSpec))
"""A version's keys for wrappers the gateway starts itself (rather than ``addresses``)."""


@dataclass(frozen=True)
class VersionConfig:
    """One version of a model, served by wrappers at ``addresses`` and/or launched ones."""

    version: str
    addresses: tuple[str, ...] = ()
    launch: LaunchSpec | None = None


@dataclass(frozen=True)
class BatchingConfig:
    """How a model's requests are queued and batched for its replicas.

    ``aimd`` sizes batches adaptively: up by ``step`` rows while a batch takes less than
    ``objective_ms`` less ``margin`` (a fraction), down by ``decrease`` (10%) when it takes
    longer. ``fixed`` takes ``size`` rows. ``none`` sends each request on its own, at once.
    ``delay_ms`` waits that long for more rows when a batch is not full.
    ``objective_ms`` defaults to half the smallest latency objective of the apps that
    link the model (20 ms when none does), leaving the other half for queueing.
    """

    policy: str = "aimd"
    objective_ms: float | None = None
    step: int = 4
    margin: float = 0.1
    decrease: float = 0.9
    size: int = 32
    delay_ms: float = 0.0
    max_batch: int | None = None
    max_in_flight: int = 1
    max_queue: int = 2048


@dataclass(frozen=True)
class CacheConfig:
    """Prediction caching for a model (every field is per model; caching is opt-in).

    ``exact`` caches each row's answer by its bytes within ``max_bytes``, expiring after
    ``ttl_s`` when set (a model that learns online is not cached without one).
    ``approximate`` also reuses the answer of a similar row: random hyperplanes
    (``bits`` per table, ``tables`` tables) and cosine ``threshold`` for dense rows,
    MinHash (``minhash_bands`` bands of ``minhash_rows``) and Jaccard ``text_threshold``
    for text.
    """

    exact: bool = False
    max_bytes: int = 64 * 1024 * 1024
    ttl_s: float | None = None
    approximate: bool = False
    bits: int = 12
    tables: int = 8
    threshold: float = 0.95
    minhash_rows: int = 4
    minhash_bands: int = 16
    text_threshold: float = 0.8
    approximate_entries: int = 100_000

    @property
    def enabled(self) -> bool:
        """Whether anything is cached."""
        return self.exact or self.approximate


@dataclass(frozen=True)
class ModelConfig:
    """A model: its versions, the one served by default, how long a call may take, batching."""

    name: str
    versions: tuple[VersionConfig, ...]
    current_version: str
    timeout_ms: float = 30_000.0
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    shadow: ShadowConfig | None = None
    split: Mapping[str, float] | None = None
    rollout: RolloutConfig | None = None

    def version(self, name: str) -> VersionConfig | None:
        """The version called ``name``."""
        return next((v for v in self.versions if v.version == name), None)


@dataclass(frozen=True)
class AppConfig:
    """An application: its models, latency objective, default output and correction policy.

    Policies other than ``single`` combine and learn from answers of a ``task``
    (``classification`` over ``classes`` classes, or ``regression``), read from each
    model's ``output`` (by default the first output that fits). Below
    ``min_confidence`` the default output is answered. ``straggler_mitigation``
    combines what arrived by the objective instead of waiting for every model;
    ``forward_feedback`` also teaches the models that learn online.
    """

    name: str
    models: tuple[str, ...]
    latency_objective_ms: float
    policy: str = PASS_THROUGH
    default_output: Any = None
    has_default_output: bool = False
    task: str = "classification"
    classes: int = 0
    output: str | None = None
    min_confidence: float = 0.0
    straggler_mitigation: bool = True
    forward_feedback: bool = False
    policy_options: Mapping[str, float] = field(default_factory=dict)
    api_keys: tuple[str, ...] = ()
    """When any are given, predict and feedback need ``Authorization: Bearer <one of them>``."""


@dataclass(frozen=True)
class GatewaySettings:
    """How the gateway itself runs."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 16 * 1024 * 1024
    admin_token: str | None = None
    state: str = "ketch-state.sqlite"
    """A SQLite file, or a Redis URL (``redis://``, ``rediss://``, ``unix://``)."""
    log_level: str = "info"
    dashboard: str = "token"
    """Who may read ``/dashboard``'s data: ``token`` (the admin token's holders), ``open``
    (anyone who reaches the gateway), ``off`` (nobody)."""
    resolve_every_s: float = 5.0
    """Seconds between lookups of each ``dns:`` replica address."""
    strict_dns: bool = False
    """A ``dns:`` address that does not resolve at start-up stops the gateway (else the
    version waits, not ready, until it resolves)."""
    limits: ServerLimits = field(default_factory=ServerLimits)
    user_state_ttl_s: float | None = DEFAULT_USER_STATE_TTL_S
    """Per-user policy state untouched by feedback for this long is forgotten (None: never)."""
    cors: CorsConfig | None = None
    tls: TlsConfig | None = None
    wrapper_tls: WrapperTlsConfig | None = None
    workers: int = 1
    """Processes serving the one port (``--workers``): each its own event loop and batchers."""
    worker_socket: str = "shared"
    """How workers share the port: ``shared`` (one listening socket, inherited) or
    ``reuseport`` (a socket per worker, bound with ``SO_REUSEPORT``)."""


@dataclass(frozen=True)
class GatewayConfig:
    """The whole configuration."""

    settings: GatewaySettings
    models: tuple[ModelConfig, ...]
    apps: tuple[AppConfig, ...]
    source: Path | None = None
    admin: AdminPolicy = field(default_factory=AdminPolicy)
    wrappers: WrapperSettings = field(default_factory=WrapperSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)

    def model(self, name: str) -> ModelConfig | None:
        """The model called ``name``."""
        return next((m for m in self.models if m.name == name), None)

    def app(self, name: str) -> AppConfig | None:
        """The app called ``name``."""
        return next((a for a in self.apps if a.name == name), None)


def _address(reader: Reader, key: str, address: str) -> str:
    try:
        check_address(address)
    except ValueError as error:
        raise reader.error(key, str(error)) from None
    return address


def _plugin(reader: Reader, admin: AdminPolicy | None) -> str:
    plugin = reader.string("plugin")
    if admin is not None:
        admin.check_plugin(reader, plugin)
    if not is_import_reference(plugin):
        installed = installed_plugins()
        if plugin not in installed:
            listed = ", ".join(installed) or "none"
            raise reader.error(
                "plugin", f"no Ketch plugin named {plugin!r} is installed ({listed})"
            )
    return plugin


def _model_path(reader: Reader, base: Path, admin: AdminPolicy | None) -> Path:
    given = reader.string("path")
    if admin is not None:
        path = admin.confine(reader, "path", given, base)
    else:
        path = Path(given).expanduser()
        path = path if path.is_absolute() else base / path
    if not path.exists():
        raise reader.error("path", f"no model file or directory at {str(path)!r}")
    return path


def read_version(reader: Reader, base: Path, admin: AdminPolicy | None = None) -> VersionConfig:
    """One ``[[models.versions]]`` table; paths are relative to ``base``.

    ``admin``, for a version sent to the admin API, is what the API may launch.
    """
    reader.check_keys({"version", "addresses", *LAUNCH_KEYS}, {"version"})
    version = reader.string("version")
    addresses = tuple(_address(reader, "addresses", a) for a in reader.strings("addresses", ()))
    launch = None
    launching = LAUNCH_KEYS & set(reader.data)
    if launching:
        if "plugin" not in reader.data or "path" not in reader.data:
            missing = "plugin" if "plugin" not in reader.data else "path"
            raise reader.error(missing, "missing (a launched wrapper needs a plugin and a path)")
        path = _model_path(reader, base, admin)
        plugin = _plugin(reader, admin)
        count = reader.integer("count", 1, minimum=0)
        options = reader.string_table("options")
        if admin is not None:
            admin.check_count(reader, "count", count)
            options = admin.check_options(reader, options, base)
        launch = LaunchSpec(
            plugin=plugin,
            path=path,
            device=reader.string("device", "cpu"),
            count=count,
            options=options,
            max_batch=reader.optional_integer("max_batch", minimum=1),
        )
    if not addresses and launch is None:
        raise reader.error(
            None, "a version needs replicas: addresses of running wrappers, or a plugin and a path"
        )
    return VersionConfig(version, addresses, launch)


def read_batching(reader: Reader) -> BatchingConfig:
    """A ``[models.batching]`` table."""
    reader.check_keys(
        {
            "policy",
            "objective_ms",
            "step",
            "margin",
            "decrease",
            "size",
            "delay_ms",
            "max_batch",
            "max_in_flight",
            "max_queue",
        }
    )
    policy = reader.string("policy", "aimd")
    if policy not in BATCH_POLICIES:
        raise reader.error(
            "policy",
            f"unknown batching policy {policy!r}; expected one of {', '.join(BATCH_POLICIES)}",
        )
    margin = reader.number("margin", 0.1, minimum=0, inclusive=True)
    if margin >= 1:
        raise reader.error("margin", f"is a fraction of the objective below 1, got {margin}")
    decrease = reader.number("decrease", 0.9, minimum=0)
    if decrease >= 1:
        raise reader.error(
            "decrease", f"multiplies the batch size on a miss: below 1, got {decrease}"
        )
    return BatchingConfig(
        policy=policy,
        objective_ms=reader.number("objective_ms", minimum=0)
        if "objective_ms" in reader.data
        else None,
        step=reader.integer("step", 4, minimum=1),
        margin=margin,
        decrease=decrease,
        size=reader.integer("size", 32, minimum=1),
        delay_ms=reader.number("delay_ms", 0.0, minimum=0, inclusive=True),
        max_batch=reader.optional_integer("max_batch", minimum=1),
        max_in_flight=reader.integer("max_in_flight", 1, minimum=1),
        max_queue=reader.integer("max_queue", 2048, minimum=1),
    )


def _fraction(reader: Reader, key: str, default: float) -> float:
    value = reader.number(key, default, minimum=0)
    if value > 1:
        raise reader.error(key, f"is a similarity between 0 and 1, got {value}")
    return value


def read_cache(reader: Reader) -> CacheConfig:
    """A ``[models.cache]`` table."""
    reader.check_keys(
        {
            "exact",
            "max_bytes",
            "ttl_s",
            "approximate",
            "bits",
            "tables",
            "threshold",
            "minhash_rows",
            "minhash_bands",
            "text_threshold",
            "approximate_entries",
        }
    )
    approximate = reader.boolean("approximate", False)
    return CacheConfig(
        exact=reader.boolean("exact", True) or approximate,
        max_bytes=reader.integer("max_bytes", 64 * 1024 * 1024, minimum=1024),
        ttl_s=reader.number("ttl_s", minimum=0) if "ttl_s" in reader.data else None,
        approximate=approximate,
        bits=reader.integer("bits", 12, minimum=1),
        tables=reader.integer("tables", 8, minimum=1),
        threshold=_fraction(reader, "threshold", 0.95),
        minhash_rows=reader.integer("minhash_rows", 4, minimum=1),
        minhash_bands=reader.integer("minhash_bands", 16, minimum=1),
        text_threshold=_fraction(reader, "text_threshold", 0.8),
        approximate_entries=reader.integer("approximate_entries", 100_000, minimum=1),
    )


def read_model(reader: Reader, base: Path, admin: AdminPolicy | None = None) -> ModelConfig:
    """One ``[[models]]`` table (``admin``: what the admin API may launch, for one sent to it)."""
    reader.check_keys(
        {"name", "version", "versions", "timeout_ms", "batching", "cache"} | ROLLOUT_KEYS,
        {"name", "versions"},
    )
    name = reader.string("name")
    versions = tuple(
        read_version(item, base, admin) for item in reader.tables("versions", required=True)
    )
    if not versions:
        raise reader.error("versions", "a model needs at least one version")
    seen: set[str] = set()
    for index, version in enumerate(versions):
        if version.version in seen:
            raise reader.child_error(
                "versions", index, f"version {version.version!r} is listed twice"
            )
        seen.add(version.version)
    current = reader.string("version", versions[-1].version)
    if current not in seen:
        raise reader.error("version", f"{current!r} is not one of the versions ({', '.join(seen)})")
    batching = (
        read_batching(reader.child("batching")) if "batching" in reader.data else BatchingConfig()
    )
    cache = read_cache(reader.child("cache")) if "cache" in reader.data else CacheConfig()
    shadow = read_shadow(reader.child("shadow"), seen, current) if "shadow" in reader.data else None
    split = read_split(reader.child("split"), seen) if "split" in reader.data else None
    rollout = (
        read_rollout(reader.child("rollout"), seen, current) if "rollout" in reader.data else None
    )
    if split is not None and rollout is not None:
        raise reader.error("split", "a model with a rollout is split by it; give one or the other")
    return ModelConfig(
        name,
        versions,
        current,
        reader.number("timeout_ms", 30_000.0, minimum=0),
        batching,
        cache,
        shadow,
        split,
        rollout,
    )


def read_app(reader: Reader, models: Mapping[str, ModelConfig] | None = None) -> AppConfig:
    """One ``[[apps]]`` table; ``models``, when given, are the models it may link."""
    reader.check_keys(
        {
            "name",
            "models",
            "latency_objective_ms",
            "policy",
            "default_output",
            "task",
            "classes",
            "output",
            "min_confidence",
            "straggler_mitigation",
            "forward_feedback",
            "policy_options",
            "api_keys",
            "api_keys_env",
        },
        {"name", "models", "latency_objective_ms"},
    )
    linked = reader.strings("models")
    if models is not None:
        for model in linked:
            if model not in models:
                known = ", ".join(models) or "none"
                raise reader.error("models", f"unknown model {model!r} (models: {known})")
    policy = reader.string("policy", PASS_THROUGH)
    if policy not in POLICIES:
        raise reader.error(
            "policy", f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}"
        )
    task = reader.string("task", "classification")
    if task not in TASKS:
        raise reader.error("task", f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    classes = reader.integer("classes", 0, minimum=0)
    if POLICIES[policy].learns and task == "classification" and classes < 2:
        raise reader.error("classes", f"policy {policy!r} needs the number of classes (2 or more)")
    forward = reader.boolean("forward_feedback", False)
    if forward and not POLICIES[policy].learns:
        raise reader.error(
            "forward_feedback",
            f"policy {policy!r} takes no feedback to forward; choose a correction policy "
            "(and the task and classes the labels are read by)",
        )
    confidence = reader.number("min_confidence", 0.0, minimum=0, inclusive=True)
    if confidence > 1:
        raise reader.error("min_confidence", f"is a probability between 0 and 1, got {confidence}")
    return AppConfig(
        name=reader.string("name"),
        models=linked,
        latency_objective_ms=reader.number("latency_objective_ms", minimum=0),
        policy=policy,
        default_output=reader.data.get("default_output"),
        has_default_output="default_output" in reader.data,
        task=task,
        classes=classes,
        output=reader.optional_string("output"),
        min_confidence=confidence,
        straggler_mitigation=reader.boolean("straggler_mitigation", True),
        forward_feedback=forward,
        policy_options=_policy_options(reader, policy),
        api_keys=read_api_keys(reader),
    )


def _policy_options(reader: Reader, policy: str) -> dict[str, float]:
    if "policy_options" not in reader.data:
        return {}
    table = reader.child("policy_options")
    entry = POLICIES[policy]
    if not entry.option_defaults:
        raise reader.error("policy_options", f"policy {policy!r} has no options")
    try:
        return entry.check_options(table.data)
    except ValueError as error:
        raise reader.error("policy_options", str(error)) from None


def state_location(state: str, base: Path) -> str:
    """A Redis URL as it is; a file path made absolute against ``base``."""
    if is_redis_location(state):
        return state
    path = Path(state).expanduser()
    return str(path if path.is_absolute() else base / path)


def _settings(reader: Reader, base: Path) -> GatewaySettings:
    reader.check_keys(
        {"host", "port", "max_body_bytes", "admin_token", "admin_token_env", "state", "log_level"}
        | {"dashboard"}
        | {"resolve_every_s", "strict_dns"}
        | LIMIT_KEYS
        | {"user_state_ttl_s", "cors", "tls", "wrapper_tls"}
        | {"workers", "worker_socket"}
    )
    variable = reader.string("admin_token_env", DEFAULT_ADMIN_TOKEN_VARIABLE)
    token = reader.optional_string("admin_token") or os.environ.get(variable) or None
    state = reader.string("state", "ketch-state.sqlite")
    port = reader.integer("port", 8080, minimum=0)
    if port > 65535:
        raise reader.error("port", f"a port is at most 65535, got {port}")
    return GatewaySettings(
        host=reader.string("host", "127.0.0.1"),
        port=port,
        max_body_bytes=reader.integer("max_body_bytes", 16 * 1024 * 1024, minimum=1),
        admin_token=token,
        state=state_location(state, base),
        log_level=reader.string("log_level", "info").lower(),
        dashboard=_dashboard_access(reader),
        resolve_every_s=reader.number("resolve_every_s", 5.0, minimum=0),
        strict_dns=reader.boolean("strict_dns", False),
        limits=read_server_limits(reader),
        user_state_ttl_s=_user_state_ttl(reader),
        cors=read_cors(reader.child("cors")) if "cors" in reader.data else None,
        tls=read_tls(reader.child("tls"), base) if "tls" in reader.data else None,
        wrapper_tls=read_wrapper_tls(reader.child("wrapper_tls"), base)
        if "wrapper_tls" in reader.data
        else None,
        workers=reader.integer("workers", 1, minimum=1),
        worker_socket=_choice(reader, "worker_socket", "shared", WORKER_SOCKETS),
    )


def _choice(reader: Reader, key: str, default: str, choices: tuple[str, ...]) -> str:
    value = reader.string(key, default)
    if value not in choices:
        raise reader.error(key, f"unknown value {value!r}; expected one of {', '.join(choices)}")
    return value


def _user_state_ttl(reader: Reader) -> float | None:
    ttl = reader.number("user_state_ttl_s", DEFAULT_USER_STATE_TTL_S, minimum=0, inclusive=True)
    return ttl or None


def _dashboard_access(reader: Reader) -> str:
    access = reader.string("dashboard", "token")
    if access not in DASHBOARD_ACCESS:
        raise reader.error(
            "dashboard", f"unknown access {access!r}; expected one of {', '.join(DASHBOARD_ACCESS)}"
        )
    return access


def _unique(reader: Reader, key: str, names: list[str], what: str) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise reader.child_error(key, index, f"{what} {name!r} is defined twice")
        seen.add(name)


def parse_config(text: str, source: str = "ketch.toml", base: Path | None = None) -> GatewayConfig:
    """The configuration in ``text``; ConfigError, naming the line, when it is invalid."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    base = base or Path.cwd()
    root = Reader(data, source=source, lines=TomlLines(text))
    root.check_keys({"gateway", "admin", "wrappers", "tracing", "models", "apps"})
    settings = (
        _settings(root.child("gateway"), base)
        if "gateway" in data
        else GatewaySettings(state=str(base / "ketch-state.sqlite"))
    )
    models = [read_model(item, base) for item in root.tables("models")]
    _unique(root, "models", [m.name for m in models], "model")
    by_name = {m.name: m for m in models}
    apps = [read_app(item, by_name) for item in root.tables("apps")]
    _unique(root, "apps", [a.name for a in apps], "app")
    admin = read_admin_policy(root.child("admin"), base) if "admin" in data else AdminPolicy()
    wrappers = (
        read_wrapper_settings(root.child("wrappers")) if "wrappers" in data else WrapperSettings()
    )
    tracing = read_tracing(root.child("tracing") if "tracing" in data else None)
    return GatewayConfig(
        settings, tuple(models), tuple(apps), Path(source), admin, wrappers, tracing
    )


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate the configuration file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"cannot read the configuration {str(path)!r}: {error.strerror}"
        ) from None
    return parse_config(text, str(path), path.resolve().parent)
