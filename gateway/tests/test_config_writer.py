"""ketch.toml written from Python values reads back as the configuration it describes."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ketch_gateway import (
    app_table,
    config_text,
    load_config,
    model_table,
    parse_config,
    version_table,
    write_config,
)


def test_written_tables_read_back_as_the_configuration(tmp_path: Path) -> None:
    model_path = tmp_path / "models" / 'odd "name".skops'
    model_path.parent.mkdir()
    model_path.write_bytes(b"")
    text = config_text(
        gateway={"admin_token": "secret", "log_level": None},
        admin={"model_roots": [str(model_path.parent)]},
        models=[
            model_table(
                "digits",
                version_table("sklearn", model_path, count=2, options={"method": "predict"}),
                version_table(addresses=["127.0.0.1:9001"], version="2"),
                cache={"exact": True},
            )
        ],
        apps=[app_table("digits", ["digits"], 250, default_output=-1)],
    )
    config = parse_config(text)
    (model,) = config.models
    assert [v.version for v in model.versions] == ["1", "2"]
    launched, remote = model.versions
    assert launched.launch is not None
    assert Path(launched.launch.path) == model_path
    assert launched.launch.count == 2
    assert dict(launched.launch.options) == {"method": "predict"}
    assert list(remote.addresses) == ["127.0.0.1:9001"]
    assert model.cache.exact is True
    (app,) = config.apps
    assert (app.name, list(app.models), app.latency_objective_ms) == ("digits", ["digits"], 250)
    assert app.default_output == -1
    assert config.settings.admin_token == "secret"


def test_none_values_and_sections_are_left_out(tmp_path: Path) -> None:
    text = config_text(gateway={"log_level": None, "admin_token": "t"}, admin=None)
    assert tomllib.loads(text) == {"gateway": {"admin_token": "t"}}
    path = write_config(tmp_path, text, "other.toml")
    assert path == tmp_path / "other.toml"
    assert load_config(path).settings.admin_token == "t"
