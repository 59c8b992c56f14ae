"""Reading SavedModel directories and Keras 3 files as serving functions on a device.

Either format becomes a :class:`ServingFunction`: a TensorFlow concrete function
that takes a dict of named tensors and returns a dict of named tensors, with the
input and output specs read from the model's own signature.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ketch import ModelLoadError, TensorSpec
from ketch_tensorflow.devices import Device
from ketch_tensorflow.importing import tensorflow
from ketch_tensorflow.options import TensorFlowOptions
from ketch_tensorflow.tensor_specs import ketch_tensor_spec

__all__ = [
    "KERAS_SUFFIX",
    "SAVEDMODEL_FILES",
    "ServingFunction",
    "model_format",
    "read_serving_function",
]

KERAS_SUFFIX: Final = ".keras"
SAVEDMODEL_FILES: Final = ("saved_model.pb", "saved_model.pbtxt")
SAVEDMODEL_PLATFORM: Final = "tensorflow-savedmodel"
KERAS_PLATFORM: Final = "tensorflow-keras"

TensorCall = Callable[[dict[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class ServingFunction:
    """Named tensors in, named tensors out, traced once for the device it was loaded on.

    ``owner`` keeps the loaded object alive: a SavedModel's functions hold only weak
    references to its variables.
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    call: TensorCall
    platform: str
    owner: Any


def model_format(path: Path) -> str | None:
    """``savedmodel`` or ``keras``; None when the path is neither."""
    if path.is_dir() and any((path / name).is_file() for name in SAVEDMODEL_FILES):
        return "savedmodel"
    if path.is_file() and path.name in SAVEDMODEL_FILES:
        return "savedmodel"
    if path.suffix.lower() == KERAS_SUFFIX:
        return "keras"
    return None


def _first_line(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error)
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


# --- SavedModel ---------------------------------------------------------------------------------


def _read_savedmodel(path: Path, options: TensorFlowOptions, device: Device) -> ServingFunction:
    tf = tensorflow()
    folder = path.parent if path.is_file() else path
    try:
        with tf.device(device.tf_name):
            loaded = tf.saved_model.load(str(folder))
    except Exception as error:
        raise ModelLoadError(
            f"{folder} is not a readable SavedModel: {_first_line(error)}"
        ) from error
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    if options.signature not in signatures:
        offered = ", ".join(sorted(signatures)) or "none (save it with signatures=...)"
        raise ModelLoadError(
            f"{folder} has no signature {options.signature!r}; its signatures: {offered}. "
            "Choose one with the option signature=NAME"
        )
    function = signatures[options.signature]
    where = f"of signature {options.signature!r} in {folder}"
    positional, named = function.structured_input_signature
    if positional:
        raise ModelLoadError(f"the inputs {where} are positional; Ketch needs named inputs")
    # a signature's tensors are protobuf maps, which keep no order: sort them by name
    inputs = tuple(
        ketch_tensor_spec(name, spec.dtype, spec.shape, f"input {name!r} {where}")
        for name, spec in sorted(named.items())
    )
    outputs = tuple(
        ketch_tensor_spec(name, spec.dtype, spec.shape, f"output {name!r} {where}")
        for name, spec in sorted(function.structured_outputs.items())
    )

    def call(tensors: dict[str, Any]) -> Mapping[str, Any]:
        result: Mapping[str, Any] = function(**tensors)
        return result

    return ServingFunction(inputs, outputs, call, SAVEDMODEL_PLATFORM, loaded)


# --- Keras 3 ------------------------------------------------------------------------------------


def _keras_on_tensorflow() -> Any:
    """The ``keras`` module, or ModelLoadError when Keras is set to another backend."""
    chosen = os.environ.get("KERAS_BACKEND", "tensorflow")
    if chosen == "tensorflow":
        import keras

        chosen = keras.backend.backend()
        if chosen == "tensorflow":
            return keras
    raise ModelLoadError(
        f"Keras is set to the {chosen!r} backend (KERAS_BACKEND); the tensorflow plugin runs "
        "Keras models on TensorFlow: set KERAS_BACKEND=tensorflow, or leave it unset"
    )


def _load_keras_model(path: Path, options: TensorFlowOptions) -> Any:
    keras = _keras_on_tensorflow()
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not options.trust_pickle)
    except ValueError as error:
        if "safe_mode" in str(error):
            raise ModelLoadError(
                f"{path} holds Python code (a Lambda layer) that Keras would run while loading "
                "it. Load it only if you trust where it came from: pass --trust-pickle (or the "
                "option trust_pickle=true)"
            ) from error
        raise ModelLoadError(
            f"{path} is not a loadable Keras model: {_first_line(error)}"
        ) from error
    except Exception as error:
        raise ModelLoadError(
            f"{path} is not a loadable Keras model: {_first_line(error)}"
        ) from error


def _is_sequential(model: Any) -> bool:
    import keras

    return isinstance(model, keras.Sequential)


def _keras_input_structure(model: Any, path: Path) -> Any:
    """The model's inputs as it takes them: one tensor, a list, or a dict of named tensors.

    A functional model records them in ``model.input``. A ``Sequential`` model
    reloaded from a ``.keras`` file has no ``model.input`` (it was never called as a
    whole), but lists its one input in ``model.inputs`` however it was built: from
    ``keras.Input``, with ``input_shape=``, by ``build()`` or by a first call.
    """
    try:
        return model.input
    except (AttributeError, ValueError):
        pass
    try:
        listed = list(model.inputs or [])
    except (AttributeError, ValueError):
        listed = []
    if listed:
        return listed[0] if len(listed) == 1 else list(listed)
    raise ModelLoadError(
        f"{path}: {type(model).__name__} has no defined inputs (it was saved before it was "
        "built); build it before saving (keras.Input as its first layer, model.build(shape), "
        "or one call on data), or export it as a SavedModel"
    )


def _keras_inputs(
    model: Any, path: Path
) -> tuple[list[str], list[Any], Callable[[dict[str, Any]], Any]]:
    """Input names, their Keras tensors, and how to arrange named tensors for ``model``."""
    import keras

    structure = _keras_input_structure(model, path)
    if isinstance(structure, Mapping):
        names = [str(key) for key in structure]
        tensors = [structure[key] for key in structure]
        return names, tensors, lambda named: {key: named[str(key)] for key in structure}
    tensors = list(keras.tree.flatten(structure))
    names = [str(tensor.name) for tensor in tensors]

    def arrange(named: dict[str, Any]) -> Any:
        return keras.tree.pack_sequence_as(structure, [named[name] for name in names])

    return names, tensors, arrange


def _keras_output_names(model: Any, path: Path) -> tuple[list[str], Callable[[Any], list[Any]]]:
    """Output names, and how to list the model's outputs in that order.

    A ``Sequential`` model's one output is named after its last layer, as a
    functional model's outputs are named after the layers that make them.
    """
    import keras

    if _is_sequential(model):
        last = model.layers[-1].name if model.layers else "output_0"
        return [str(last)], lambda outputs: list(keras.tree.flatten(outputs))
    structure = model.output
    if isinstance(structure, Mapping):
        keys = list(structure)
        return [str(key) for key in keys], lambda outputs: [outputs[key] for key in keys]
    count = len(keras.tree.flatten(structure))
    names = [str(name) for name in getattr(model, "output_names", None) or []]
    if len(names) != count or len(set(names)) != count:
        names = [f"output_{index}" for index in range(count)]
    return names, lambda outputs: list(keras.tree.flatten(outputs))


def _input_shape(model: Any, tensor: Any) -> Any:
    """A Keras input's shape; a ``Sequential`` model's first dimension is always the batch.

    A ``Sequential`` model built by calling it on data records that call's batch size,
    though it takes any.
    """
    shape = tuple(tensor.shape)
    if _is_sequential(model) and shape:
        return (None, *shape[1:])
    return shape


def _read_keras(path: Path, options: TensorFlowOptions, device: Device) -> ServingFunction:
    tf = tensorflow()
    with tf.device(device.tf_name):
        model = _load_keras_model(path, options)
        names, keras_tensors, arrange = _keras_inputs(model, path)
        if len(set(names)) != len(names):
            raise ModelLoadError(f"{path}: the model's inputs do not have distinct names: {names}")
        shapes = [_input_shape(model, tensor) for tensor in keras_tensors]
        inputs = tuple(
            ketch_tensor_spec(name, tensor.dtype, shape, f"input {name!r} of {path}")
            for name, tensor, shape in zip(names, keras_tensors, shapes, strict=True)
        )
        output_names, listed = _keras_output_names(model, path)
        input_signature = {
            name: tf.TensorSpec(shape, tensor.dtype, name=name)
            for name, tensor, shape in zip(names, keras_tensors, shapes, strict=True)
        }

        def serve(named: dict[str, Any]) -> dict[str, Any]:
            outputs = model(arrange(named), training=False)
            return dict(zip(output_names, listed(outputs), strict=True))

        traced = tf.function(serve, input_signature=[input_signature], autograph=False)
        try:
            concrete = traced.get_concrete_function()
        except Exception as error:
            raise ModelLoadError(
                f"{path}: the model cannot be traced as a TensorFlow function: {_first_line(error)}"
            ) from error
    traced_outputs = concrete.structured_outputs
    outputs = tuple(
        ketch_tensor_spec(
            name,
            traced_outputs[name].dtype,
            traced_outputs[name].shape,
            f"output {name!r} of {path}",
        )
        for name in output_names
    )
    return ServingFunction(inputs, outputs, concrete, KERAS_PLATFORM, (model, traced))


def read_serving_function(
    path: Path, options: TensorFlowOptions, device: Device
) -> ServingFunction | None:
    """The model at ``path`` loaded onto ``device``; None when it is neither format."""
    kind = model_format(path)
    if kind == "savedmodel":
        return _read_savedmodel(path, options, device)
    if kind == "keras":
        if not path.is_file():
            raise ModelLoadError(f"{path} is not a file; a Keras model is one .keras file")
        return _read_keras(path, options, device)
    return None
