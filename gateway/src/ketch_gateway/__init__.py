"""Ketch's reference gateway: the Starlette application that applications talk to.

``ketch gateway --config ketch.toml`` runs it; :func:`create_app` builds the
application around a :class:`Gateway` for embedding.
"""

from ketch_gateway.control.admin_policy import AdminPolicy
from ketch_gateway.control.config import (
    AppConfig,
    ConfigError,
    GatewayConfig,
    GatewaySettings,
    LaunchSpec,
    ModelConfig,
    VersionConfig,
    load_config,
    parse_config,
)
from ketch_gateway.control.config_writer import (
    app_table,
    config_text,
    model_table,
    version_table,
    write_config,
)
from ketch_gateway.control.process import GatewayProcess, start_gateway
from ketch_gateway.control.wrapper_env import WrapperSettings
from ketch_gateway.gateway import Gateway
from ketch_gateway.http.application import create_app

__all__ = [
    "AdminPolicy",
    "AppConfig",
    "ConfigError",
    "Gateway",
    "GatewayConfig",
    "GatewayProcess",
    "GatewaySettings",
    "LaunchSpec",
    "ModelConfig",
    "VersionConfig",
    "WrapperSettings",
    "app_table",
    "config_text",
    "create_app",
    "load_config",
    "model_table",
    "parse_config",
    "start_gateway",
    "version_table",
    "write_config",
]
