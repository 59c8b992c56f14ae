"""Configuration: validated on load, with errors that name the file, line, key and problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ketch_gateway import ConfigError, load_config, parse_config
from ketch_gateway.control.toml_lines import TomlLines


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "digits.skops"
    path.write_bytes(b"placeholder: the config only checks that the file exists")
    return path


def config_text(model_file: Path, extra_version: str = "", extra_app: str = "") -> str:
    return f"""# a comment
[gateway]
port = 0

[[models]]
name = "digits"
version = "1"
  [[models.versions]]
  version = "1"
  plugin = "sklearn"
  path = "{model_file.name}"
  count = 2
{extra_version}
  [[models.versions]]
  version = "2"
  addresses = ["127.0.0.1:8001", "127.0.0.1:8002"]

[[apps]]
name = "digits-app"
models = ["digits"]
latency_objective_ms = 20
default_output = [0]
{extra_app}
"""


def parse(text: str, base: Path) -> object:
    return parse_config(text, "ketch.toml", base)


def test_a_valid_configuration(tmp_path: Path, model_file: Path) -> None:
    config = parse_config(config_text(model_file), "ketch.toml", tmp_path)
    model = config.models[0]
    assert model.current_version == "1"
    launch = model.versions[0].launch
    assert launch is not None
    assert (launch.plugin, launch.path, launch.count, launch.device) == (
        "sklearn",
        model_file,
        2,
        "cpu",
    )
    assert model.versions[1].addresses == ("127.0.0.1:8001", "127.0.0.1:8002")
    app = config.apps[0]
    assert (app.latency_objective_ms, app.default_output, app.has_default_output) == (
        20.0,
        [0],
        True,
    )
    assert config.settings.state == str(tmp_path / "ketch-state.sqlite")


@pytest.mark.parametrize(
    ("version_extra", "app_extra", "message"),
    [
        (
            '  colour = "red"',
            "",
            "ketch.toml:13: models[0].versions[0].colour: unknown key; expected one of addresses",
        ),
        (
            "  options = { method = [1] }",
            "",
            "ketch.toml:13: models[0].versions[0].options.method: expected a string",
        ),
        (
            "  max_batch = 0",
            "",
            "ketch.toml:13: models[0].versions[0].max_batch: must be at least 1, got 0",
        ),
        (
            "",
            'policy = "roulette"',
            "ketch.toml:23: apps[0].policy: unknown policy 'roulette'; expected one of single",
        ),
        ("", "latency_objective_ms = 5", "not valid TOML"),
    ],
)
def test_errors_point_at_the_line(
    tmp_path: Path, model_file: Path, version_extra: str, app_extra: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse(config_text(model_file, version_extra, app_extra), tmp_path)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("count = 2", 'count = "two"'),
            "ketch.toml:12: models[0].versions[0].count: expected an integer, got a string 'two'",
        ),
        (
            ('path = "digits.skops"', 'path = "missing.skops"'),
            "ketch.toml:11: models[0].versions[0].path: no model file or directory at",
        ),
        (
            ('plugin = "sklearn"', 'plugin = "sklaern"'),
            "ketch.toml:10: models[0].versions[0].plugin: no Ketch plugin named 'sklaern'",
        ),
        (
            ('models = ["digits"]', 'models = ["digitz"]'),
            "ketch.toml:20: apps[0].models: unknown model 'digitz' (models: digits)",
        ),
        (
            ('"127.0.0.1:8002"', '"localhost"'),
            "ketch.toml:16: models[0].versions[1].addresses: 'localhost' is not host:port",
        ),
        (
            ('version = "1"\n  [[', 'version = "9"\n  [['),
            "ketch.toml:7: models[0].version: '9' is not one of the versions",
        ),
        (
            ("latency_objective_ms = 20", "latency_objective_ms = -1"),
            "ketch.toml:21: apps[0].latency_objective_ms: must be greater than 0",
        ),
        (("latency_objective_ms = 20", ""), "ketch.toml:18: apps[0].latency_objective_ms: missing"),
        (
            ("port = 0", "port = 70000"),
            "ketch.toml:3: gateway.port: a port is at most 65535, got 70000",
        ),
        (("port = 0", "prot = 0"), "ketch.toml:3: gateway.prot: unknown key"),
        (
            ('  version = "2"\n', '  version = "1"\n'),
            "ketch.toml:14: models[0].versions[1]: version '1' is listed twice",
        ),
        (
            ('addresses = ["127.0.0.1:8001", "127.0.0.1:8002"]', ""),
            "ketch.toml:14: models[0].versions[1]: a version needs replicas",
        ),
    ],
)
def test_each_mistake_is_named(
    tmp_path: Path, model_file: Path, change: tuple[str, str], message: str
) -> None:
    text = config_text(model_file)
    assert change[0] in text
    with pytest.raises(ConfigError) as error:
        parse(text.replace(change[0], change[1], 1), tmp_path)
    assert message in str(error.value)


def test_duplicate_names(tmp_path: Path, model_file: Path) -> None:
    text = (
        config_text(model_file)
        + '\n[[apps]]\nname = "digits-app"\nmodels = []\nlatency_objective_ms = 5\n'
    )
    with pytest.raises(
        ConfigError, match=r"ketch.toml:25: apps\[1\]: app 'digits-app' is defined twice"
    ):
        parse(text, tmp_path)


def test_admin_token_from_the_environment(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KETCH_ADMIN_TOKEN", "from-env")
    config = parse_config(config_text(model_file), "ketch.toml", tmp_path)
    assert config.settings.admin_token == "from-env"
    monkeypatch.setenv("OTHER_TOKEN", "other")
    text = config_text(model_file).replace("port = 0", 'port = 0\nadmin_token_env = "OTHER_TOKEN"')
    assert parse_config(text, "ketch.toml", tmp_path).settings.admin_token == "other"


def test_load_config_reads_the_file_and_resolves_paths(tmp_path: Path, model_file: Path) -> None:
    path = tmp_path / "ketch.toml"
    path.write_text(config_text(model_file))
    config = load_config(path)
    launch = config.models[0].versions[0].launch
    assert launch is not None
    assert launch.path == model_file
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_config(tmp_path / "absent.toml")


def test_toml_lines_count_arrays_of_tables() -> None:
    lines = TomlLines('a = 1\n[[m]]\nx = 1\n[[m]]\nx = 2\n  [[m.v]]\n  y = 3\n[t]\n"q k" = 4\n')
    assert lines.line_of(("a",)) == 1
    assert lines.line_of(("m", 1, "x")) == 5
    assert lines.line_of(("m", 1, "v", 0, "y")) == 7
    assert lines.line_of(("m", 1, "v", 0, "missing")) == 6
    assert lines.line_of(("t", "q k")) == 9
    assert lines.line_of(("nothing",)) is None


def test_batching_and_cache_tables(tmp_path: Path, model_file: Path) -> None:
    extra = (
        '\n[models.batching]\npolicy = "fixed"\nsize = 8\ndelay_ms = 2\n'
        "\n[models.cache]\napproximate = true\nthreshold = 0.9\nttl_s = 30\n"
    )
    text = config_text(model_file).replace(
        'version = "1"\n  [[models.versions]]',
        'version = "1"' + extra + "\n  [[models.versions]]",
        1,
    )
    model = parse_config(text, "ketch.toml", tmp_path).models[0]
    assert (model.batching.policy, model.batching.size, model.batching.delay_ms) == (
        "fixed",
        8,
        2.0,
    )
    assert (model.cache.exact, model.cache.approximate, model.cache.threshold) == (True, True, 0.9)
    assert model.cache.ttl_s == 30.0
    plain = parse_config(config_text(model_file), "ketch.toml", tmp_path).models[0]
    assert plain.batching.policy == "aimd"
    assert not plain.cache.enabled


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            '[models.batching]\npolicy = "greedy"',
            "models[0].batching.policy: unknown batching policy 'greedy'",
        ),
        (
            "[models.batching]\nmargin = 1.5",
            "models[0].batching.margin: is a fraction of the objective below 1",
        ),
        ("[models.batching]\nmax_queue = 0", "models[0].batching.max_queue: must be at least 1"),
        (
            "[models.cache]\nthreshold = 2",
            "models[0].cache.threshold: is a similarity between 0 and 1",
        ),
        ("[models.cache]\nlsh = 3", "models[0].cache.lsh: unknown key"),
    ],
)
def test_batching_and_cache_mistakes(
    tmp_path: Path, model_file: Path, table: str, message: str
) -> None:
    text = config_text(model_file).replace(
        'version = "1"\n  [[models.versions]]',
        'version = "1"\n' + table + "\n  [[models.versions]]",
        1,
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(text, "ketch.toml", tmp_path)


@pytest.mark.parametrize(
    ("app", "message"),
    [
        (
            'policy = "exp4"',
            "apps[0].classes: policy 'exp4' needs the number of classes (2 or more)",
        ),
        ('policy = "exp4"\nclasses = 10\ntask = "ranking"', "apps[0].task: unknown task 'ranking'"),
        (
            'policy = "exp3"\nclasses = 3\n[apps.policy_options]\neta = 1',
            "policy 'exp3' has no option 'eta'",
        ),
        ('policy = "single"\n[apps.policy_options]\ngamma = 1', "policy 'single' has no options"),
        (
            "forward_feedback = true",
            "apps[0].forward_feedback: policy 'single' takes no feedback to forward",
        ),
        (
            'policy = "exp4"\nclasses = 3\nmin_confidence = 2',
            "apps[0].min_confidence: is a probability",
        ),
    ],
)
def test_correction_settings_are_checked(
    tmp_path: Path, model_file: Path, app: str, message: str
) -> None:
    text = config_text(model_file).replace(
        "default_output = [0]\n", "default_output = [0]\n" + app + "\n"
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(text, "ketch.toml", tmp_path)


def test_correction_settings(tmp_path: Path, model_file: Path) -> None:
    extra = 'policy = "personalized"\nclasses = 10\nmin_confidence = 0.5\nforward_feedback = true\n'
    extra += "[apps.policy_options]\nlearning_rate = 0.5\n"
    text = config_text(model_file).replace(
        "default_output = [0]\n", "default_output = [0]\n" + extra
    )
    app = parse_config(text, "ketch.toml", tmp_path).apps[0]
    assert (app.policy, app.classes, app.min_confidence, app.forward_feedback) == (
        "personalized",
        10,
        0.5,
        True,
    )
    assert app.policy_options == {"learning_rate": 0.5}
    assert app.straggler_mitigation
