"""The configuration of limits, CORS, TLS and API keys: read and checked like the rest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ketch_gateway import parse_config
from ketch_gateway.control.config import ConfigError
from ketch_gateway.control.security_config import DEFAULT_USER_STATE_TTL_S, ServerLimits


def test_defaults(tmp_path: Path) -> None:
    settings = parse_config("", "ketch.toml", tmp_path).settings
    assert settings.limits == ServerLimits()
    assert settings.user_state_ttl_s == DEFAULT_USER_STATE_TTL_S
    assert settings.cors is None
    assert settings.tls is None
    assert settings.wrapper_tls is None


def test_everything_set(tmp_path: Path) -> None:
    for name in ("ca.pem", "gateway.pem", "gateway.key"):
        (tmp_path / name).write_text("PEM")
    config = parse_config(
        """
[gateway]
max_header_bytes = 4096
read_timeout_s = 2.5
keep_alive_timeout_s = 1
max_connections = 500
user_state_ttl_s = 0

[gateway.cors]
allow_origins = ["https://app.example"]
max_age_s = 60

[gateway.tls]
certificate = "gateway.pem"
key = "gateway.key"
client_ca = "ca.pem"

[gateway.wrapper_tls]
ca = "ca.pem"
certificate = "gateway.pem"
key = "gateway.key"
server_name = "wrappers.internal"
""",
        "ketch.toml",
        tmp_path,
    )
    settings = config.settings
    assert settings.limits == ServerLimits(4096, 2.5, 1.0, 500)
    assert settings.user_state_ttl_s is None
    assert settings.cors is not None
    assert settings.cors.allow_origins == ("https://app.example",)
    assert settings.tls is not None
    assert settings.tls.client_ca == tmp_path / "ca.pem"
    assert settings.wrapper_tls is not None
    assert settings.wrapper_tls.server_name == "wrappers.internal"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[gateway]\nmax_header_bytes = 10", "ketch.toml:2: gateway.max_header_bytes: must be at"),
        ("[gateway]\nread_timeout_s = 0", "gateway.read_timeout_s: must be greater than 0"),
        ("[gateway]\nmax_connections = 0", "gateway.max_connections: must be at least 1"),
        ("[gateway]\nuser_state_ttl_s = -1", "gateway.user_state_ttl_s: must be at least 0"),
        ("[gateway.cors]\nmax_age_s = 5", "gateway.cors.allow_origins: missing"),
        (
            '[gateway.cors]\nallow_origins = ["*"]\nallow_credentials = true',
            'gateway.cors.allow_credentials: cannot be true with the origin "*"',
        ),
        ('[gateway.tls]\ncertificate = "nope.pem"\nkey = "k"', "gateway.tls.certificate: no file"),
        ('[gateway.tls]\ncertificate = "x"', "gateway.tls.key: missing"),
        ('[gateway.wrapper_tls]\nkey = "ca.pem"', "gateway.wrapper_tls.certificate: missing"),
        ("[gateway.tls]\ncolour = 1", "gateway.tls.colour: unknown key"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "ca.pem").write_text("PEM")
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(text, "ketch.toml", tmp_path)


APP = """
[[models]]
name = "m"
  [[models.versions]]
  version = "1"
  addresses = ["127.0.0.1:9"]

[[apps]]
name = "a"
models = ["m"]
latency_objective_ms = 50
{keys}
"""


def test_api_keys_from_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("A_KEYS", "k2, k3,")
    config = parse_config(
        APP.format(keys='api_keys = ["k1"]\napi_keys_env = "A_KEYS"'), "ketch.toml", tmp_path
    )
    assert config.apps[0].api_keys == ("k1", "k2", "k3")
    monkeypatch.setenv("A_KEYS", " ")
    with pytest.raises(ConfigError, match=r"apps\[0\]\.api_keys_env: the variable A_KEYS holds"):
        parse_config(APP.format(keys='api_keys_env = "A_KEYS"'), "ketch.toml", tmp_path)
