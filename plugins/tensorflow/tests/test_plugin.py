"""The TensorFlow plugin in process: formats, signatures, datatypes, options, errors, devices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_test_models import (
    SEQUENTIAL_VARIANTS,
    as_bytes_rows,
    build_image_and_hint,
    build_sequential,
    image_and_hint_rows,
    make_sentences,
    order_rows,
    save_module,
)

from ketch import (
    DeviceUnavailableError,
    Framework,
    InvalidInputError,
    ModelLoadError,
    ModelRuntime,
    ModelSpec,
    select_framework,
)
from ketch_tensorflow import TensorFlowModel


@pytest.fixture(scope="module")
def framework() -> Framework:
    return select_framework("tensorflow")


@pytest.fixture(params=SEQUENTIAL_VARIANTS)
def sequential_variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def load(framework: Framework, path: Path, **options: str) -> ModelRuntime:
    return ModelRuntime.load(framework, ModelSpec.from_path(path, options=options))


def specs(runtime: ModelRuntime, kind: str) -> list[tuple[str, str, tuple[int, ...]]]:
    declared = runtime.signature.inputs if kind == "inputs" else runtime.signature.outputs
    return [(spec.name, spec.datatype, spec.shape) for spec in declared]


# --- Keras 3 ------------------------------------------------------------------------------------


def test_keras_mlp_signature_and_predictions(
    framework: Framework, digits_keras: Path, digits_mlp: Any, digits: Any
) -> None:
    runtime = load(framework, digits_keras)
    assert runtime.signature.platform == "tensorflow-keras"
    assert specs(runtime, "inputs") == [("pixels", "FP32", (-1, 64))]
    assert specs(runtime, "outputs") == [
        ("probabilities", "FP32", (-1, 10)),
        ("label", "INT64", (-1,)),
    ]
    assert runtime.signature.capabilities.devices == ("cpu",)
    assert not runtime.observes
    rows, labels = digits[2], digits[3]
    outputs = runtime.predict({"pixels": rows})
    expected = digits_mlp(rows, training=False)
    np.testing.assert_allclose(
        outputs["probabilities"], expected["probabilities"].numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(outputs["label"], expected["label"].numpy())
    assert (outputs["label"] == labels).mean() > 0.9


def test_keras_several_inputs_and_unnamed_outputs(framework: Framework, tmp_path: Path) -> None:
    model = build_image_and_hint()
    path = tmp_path / "two_inputs.keras"
    model.save(path)
    runtime = load(framework, path)
    assert specs(runtime, "inputs") == [
        ("image", "FP32", (-1, 4, 4)),
        ("hint", "INT64", (-1,)),
    ]
    assert specs(runtime, "outputs") == [
        ("score", "FP32", (-1, 1)),
        ("classes", "FP32", (-1, 3)),
    ]
    rows = image_and_hint_rows(5, seed=0)
    outputs = runtime.predict(rows)
    score_expected, classes_expected = model([rows["image"], rows["hint"]], training=False)
    np.testing.assert_allclose(outputs["score"], score_expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs["classes"], classes_expected.numpy(), rtol=1e-5, atol=1e-6)


def test_keras_dict_inputs(framework: Framework, tmp_path: Path) -> None:
    width = keras.Input(shape=(1,), name="width")
    height = keras.Input(shape=(1,), name="height")
    area = keras.layers.Multiply(name="area")([width, height])
    path = tmp_path / "area.keras"
    keras.Model({"width": width, "height": height}, area).save(path)
    runtime = load(framework, path)
    assert [spec.name for spec in runtime.signature.inputs] == ["width", "height"]
    outputs = runtime.predict(
        {
            "width": np.array([[2.0], [3.0]], np.float32),
            "height": np.array([[5.0], [7.0]], np.float32),
        }
    )
    np.testing.assert_array_equal(outputs["area"], [[10.0], [21.0]])


def test_keras_sequential_in_every_variant(
    framework: Framework, tmp_path: Path, digits: Any, sequential_variant: str
) -> None:
    train_rows, _, rows, _ = digits
    model = build_sequential(sequential_variant, train_rows[:64])
    path = tmp_path / f"{sequential_variant}.keras"
    model.save(path)
    runtime = load(framework, path)
    [spec] = runtime.signature.inputs
    assert (spec.datatype, spec.shape) == ("FP32", (-1, 64))
    assert specs(runtime, "outputs") == [("probabilities", "FP32", (-1, 10))]
    outputs = runtime.predict({spec.name: rows[:50]})
    expected = model(rows[:50], training=False).numpy()
    np.testing.assert_allclose(outputs["probabilities"], expected, rtol=1e-5, atol=1e-6)


def test_keras_sequential_named_input(framework: Framework, tmp_path: Path) -> None:
    model = keras.Sequential(
        [keras.Input(shape=(3,), name="measurements"), keras.layers.Dense(2, name="scores")]
    )
    path = tmp_path / "named.keras"
    model.save(path)
    runtime = load(framework, path)
    assert specs(runtime, "inputs") == [("measurements", "FP32", (-1, 3))]
    assert specs(runtime, "outputs") == [("scores", "FP32", (-1, 2))]


def test_keras_sequential_never_built_says_what_to_do(framework: Framework, tmp_path: Path) -> None:
    path = tmp_path / "unbuilt.keras"
    with pytest.warns(UserWarning, match="not yet been built"):
        keras.Sequential([keras.layers.Dense(4)]).save(path)
    with pytest.raises(ModelLoadError, match=r"no defined inputs.*model\.build\(shape\)"):
        load(framework, path)


def test_keras_lambda_layers_need_consent(framework: Framework, tmp_path: Path) -> None:
    values = keras.Input(shape=(3,), name="values")
    doubled = keras.layers.Lambda(lambda tensor: tensor * 2.0, name="doubled")(values)
    path = tmp_path / "lambda.keras"
    keras.Model(values, doubled).save(path)
    with pytest.raises(ModelLoadError, match=r"lambda\.keras holds Python code.*--trust-pickle"):
        load(framework, path)
    runtime = load(framework, path, trust_pickle="true")
    got = runtime.predict({"values": np.ones((2, 3), np.float32)})
    np.testing.assert_array_equal(got["doubled"], np.full((2, 3), 2.0))


def test_corrupt_keras_file(framework: Framework, tmp_path: Path) -> None:
    path = tmp_path / "broken.keras"
    path.write_bytes(b"not a zip archive")
    with pytest.raises(ModelLoadError, match=r"broken\.keras is not a loadable Keras model"):
        load(framework, path)


# --- SavedModel ---------------------------------------------------------------------------------


def test_savedmodel_strings_in_and_out(framework: Framework, topics_savedmodel: Path) -> None:
    runtime = load(framework, topics_savedmodel)
    assert runtime.signature.platform == "tensorflow-savedmodel"
    assert specs(runtime, "inputs") == [("text", "BYTES", (-1,))]
    assert specs(runtime, "outputs") == [
        ("probabilities", "FP32", (-1, 3)),
        ("topic", "BYTES", (-1,)),
    ]
    sentences, topics = make_sentences(60, seed=7)
    outputs = runtime.predict({"text": as_bytes_rows(sentences)})
    assert outputs["topic"].dtype == object
    assert all(isinstance(topic, bytes) for topic in outputs["topic"])
    assert (
        np.mean([got.decode() == want for got, want in zip(outputs["topic"], topics, strict=True)])
        > 0.9
    )
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, rtol=1e-5)


def test_savedmodel_matches_tensorflow(framework: Framework, topics_savedmodel: Path) -> None:
    sentences, _ = make_sentences(10, seed=8)
    loaded = tf.saved_model.load(str(topics_savedmodel))
    expected = loaded.signatures["serving_default"](text=tf.constant(sentences))
    got = load(framework, topics_savedmodel).predict({"text": as_bytes_rows(sentences)})
    np.testing.assert_array_equal(got["topic"], expected["topic"].numpy())
    np.testing.assert_allclose(got["probabilities"], expected["probabilities"].numpy(), rtol=1e-6)


def test_another_signature_by_option(framework: Framework, topics_savedmodel: Path) -> None:
    runtime = load(framework, topics_savedmodel, signature="topic_only")
    assert specs(runtime, "outputs") == [("topic", "BYTES", (-1,))]
    assert runtime.predict({"text": as_bytes_rows(["the comet and a planet orbit"])})[
        "topic"
    ].tolist() == [b"astronomy"]


def test_unknown_signature_lists_the_real_ones(
    framework: Framework, topics_savedmodel: Path
) -> None:
    with pytest.raises(
        ModelLoadError, match="no signature 'classify'; its signatures: serving_default, topic_only"
    ):
        load(framework, topics_savedmodel, signature="classify")


def test_several_inputs_of_several_datatypes(framework: Framework, order_savedmodel: Path) -> None:
    runtime = load(framework, order_savedmodel)
    assert specs(runtime, "inputs") == [
        ("coupon", "BYTES", (-1,)),
        ("member", "BOOL", (-1,)),
        ("prices", "FP64", (-1, 3)),
        ("quantity", "INT32", (-1,)),
    ]
    assert specs(runtime, "outputs") == [
        ("free_shipping", "BOOL", (-1,)),
        ("items", "INT32", (-1,)),
        ("receipt", "BYTES", (-1,)),
        ("total", "FP64", (-1,)),
    ]
    rows = order_rows(6, seed=0)
    outputs = runtime.predict(rows)
    discount = np.array([float(coupon) for coupon in rows["coupon"]])
    total = rows["prices"].sum(axis=1) * rows["quantity"] * (1.0 - discount)
    np.testing.assert_allclose(outputs["total"], total)
    np.testing.assert_array_equal(outputs["items"], rows["quantity"] * 3)
    np.testing.assert_array_equal(outputs["free_shipping"], rows["member"] | (total > 100.0))
    assert outputs["receipt"][0] == rows["coupon"][0] + b"x" + str(rows["quantity"][0]).encode()


def test_tensorflow_rejecting_the_input_is_the_callers_fault(
    framework: Framework, order_savedmodel: Path
) -> None:
    rows = order_rows(2, seed=1)
    rows["coupon"] = as_bytes_rows(["0.1", "ten percent"])
    with pytest.raises(InvalidInputError, match=r"TensorFlow rejected the input: .*ten percent"):
        load(framework, order_savedmodel).predict(rows)


def test_empty_batch_keeps_datatypes_and_shapes(
    framework: Framework, order_savedmodel: Path
) -> None:
    outputs = load(framework, order_savedmodel).predict(
        {name: array[:0] for name, array in order_rows(2, seed=2).items()}
    )
    assert {name: (array.dtype.str, array.shape) for name, array in outputs.items()} == {
        "total": ("<f8", (0,)),
        "items": ("<i4", (0,)),
        "free_shipping": ("|b1", (0,)),
        "receipt": ("|O", (0,)),
    }


def test_saved_model_pb_path_means_its_folder(framework: Framework, order_savedmodel: Path) -> None:
    runtime = load(framework, order_savedmodel / "saved_model.pb")
    assert len(runtime.signature.inputs) == 4


class _Identity(tf.Module):  # type: ignore[misc]
    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.serve = tf.function(
            lambda values: {"values": tf.identity(values)}, input_signature=[spec]
        )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            tf.TensorSpec([1, 4], tf.float32, name="values"),
            r"has shape \[1, 4\] with a fixed first dimension",
        ),
        (tf.TensorSpec([], tf.float32, name="values"), "input 'values' .* is a scalar"),
        (
            tf.TensorSpec([None, 2], tf.complex64, name="values"),
            "dtype complex64, which Ketch cannot carry",
        ),
        (tf.TensorSpec(None, tf.float32, name="values"), "unknown rank"),
    ],
)
def test_tensors_ketch_cannot_serve_are_named(
    framework: Framework, tmp_path: Path, spec: Any, message: str
) -> None:
    module = _Identity(spec)
    path = save_module(tmp_path, "identity", module, module.serve)
    with pytest.raises(ModelLoadError, match=message):
        load(framework, path)


def test_corrupt_savedmodel(framework: Framework, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x08\x01garbage")
    with pytest.raises(ModelLoadError, match="broken is not a readable SavedModel"):
        load(framework, folder)


def test_other_files_are_not_recognised(framework: Framework, tmp_path: Path) -> None:
    path = tmp_path / "weights.h5"
    path.write_bytes(b"\x89HDF")
    with pytest.raises(ModelLoadError, match="does not recognise"):
        load(framework, path)
    with pytest.raises(ModelLoadError, match=r"does not recognise a model .* holds weights\.h5"):
        load(framework, tmp_path)


# --- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"signatur": "x"}, "unknown option.*signatur.*known: signature"),
        ({"quiet": "maybe"}, "quiet='maybe' is not true or false"),
        ({"trust_pickle": "sure"}, "trust_pickle='sure' is not true or false"),
        ({"signature": "  "}, "option signature is empty"),
    ],
)
def test_bad_options_are_named(
    framework: Framework, digits_keras: Path, options: dict[str, str], message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load(framework, digits_keras, **options)


# --- devices ------------------------------------------------------------------------------------


def test_cpu_placement_runs_on_the_cpu(framework: Framework, topics_savedmodel: Path) -> None:
    model = framework.load(ModelSpec.from_path(topics_savedmodel, device="CPU"))
    placed = framework.place(model, "cpu:0")
    assert placed is model
    assert isinstance(placed, TensorFlowModel)
    assert placed.device.tf_name == "/device:CPU:0"
    variables = placed.function.owner.signatures["serving_default"].variables
    assert variables
    assert all(variable.device.endswith("CPU:0") for variable in variables)


def test_keras_cpu_placement_keeps_variables_on_the_cpu(
    framework: Framework, digits_keras: Path
) -> None:
    placed = framework.place(framework.load(ModelSpec.from_path(digits_keras)), "cpu")
    assert isinstance(placed, TensorFlowModel)
    model, _ = placed.function.owner
    assert model.variables
    assert all(variable.value.device.endswith("CPU:0") for variable in model.variables)


@pytest.mark.parametrize(
    ("device", "reason"),
    [
        ("mps", "TensorFlow runs models on cpu, gpu, gpu:N, cuda or cuda:N"),
        ("cpu:1", "TensorFlow uses all CPU cores as one device"),
        ("tpu:0", "TensorFlow runs models on"),
    ],
)
def test_devices_tensorflow_does_not_know(
    framework: Framework, digits_keras: Path, device: str, reason: str
) -> None:
    model = framework.load(ModelSpec.from_path(digits_keras))
    with pytest.raises(
        DeviceUnavailableError, match=rf"'{device}' is not available: {reason}.*\(available: cpu"
    ):
        framework.place(model, device)


@pytest.mark.parametrize("device", ["gpu", "gpu:0", "cuda", "cuda:1"])
def test_missing_gpu_lists_the_devices_there_are(
    framework: Framework, digits_keras: Path, device: str
) -> None:
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has a GPU; test_gpu.py covers placement there")
    model = framework.load(ModelSpec.from_path(digits_keras))
    with pytest.raises(
        DeviceUnavailableError,
        match=rf"'{device}' is not available: TensorFlow sees no GPU.*\(available: cpu\)",
    ):
        framework.place(model, device)


def test_a_missing_device_at_load_still_loads_then_placement_refuses(
    framework: Framework, digits_keras: Path
) -> None:
    model = framework.load(ModelSpec.from_path(digits_keras, device="cuda:7"))
    assert isinstance(model, TensorFlowModel)
    assert model.device.name == "cpu"
    with pytest.raises(DeviceUnavailableError, match="'cuda:7'"):
        framework.place(model, "cuda:7")
