"""The rows the suite predicts, and the files a run's rows and labels come from.

The suite's sample is, in this order: the target's own rows (``--inputs FILE`` on
the command line), the rows the plugin gives through ``ketch_example_inputs``, or
random rows that fit the signature. A problem with the run's own rows or labels
(a file that cannot be read, a name the model does not declare) is a
:class:`SampleInputsError`: the run's fault, never the plugin's. Rows the plugin
gives that do not fit its own signature are the plugin's fault.

Files of rows:

- ``.npz``: one array per input name. Text is a unicode array (``numpy.array(texts)``,
  dtype ``<U…``) or a bytes array (dtype ``S…``; numpy drops trailing NUL bytes);
  object arrays are refused, since numpy loads them only by unpickling, which can
  run code.
- ``.json``: an object whose keys are input names and whose values are lists of rows.
- ``.jsonl``: one row per line, each an object whose keys are input names.

Files of labels: ``.npy`` (no object arrays) or ``.json`` (a list, one label per row).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np

from ketch import ContractViolation, InvalidInputError, Signature, numpy_dtype, validate_inputs
from ketch_conformance.failures import ConformanceFailure
from ketch_conformance.faults import PluginFault
from ketch_conformance.samples import SAMPLE_ROWS, random_inputs, take_rows
from ketch_conformance.subjects import InProcessSubject, error_name

__all__ = [
    "MIN_SAMPLE_ROWS",
    "RANDOM",
    "SampleInputsError",
    "choose_sample_inputs",
    "fit_inputs",
    "plugin_examples",
    "read_inputs_file",
    "read_labels_file",
]

MIN_SAMPLE_ROWS: Final = 4
RANDOM: Final = "random rows made from the signature"
_PICKLE_HINT: Final = (
    "an object array, which numpy loads only by unpickling (and unpickling can run code, so "
    "the suite refuses it): save text as a unicode array (numpy.array(texts), dtype <U...) or "
    "bytes (dtype S...), or write the rows as .json or .jsonl"
)


class SampleInputsError(ValueError):
    """The run's own rows or labels cannot be used; the message names the file and the fault."""


def _column(values: list[Any], where: str) -> np.ndarray:
    try:
        array = np.array(values)
    except ValueError as error:
        raise SampleInputsError(f"{where}: the rows do not form an array: {error}") from error
    if array.dtype.kind == "O":
        raise SampleInputsError(f"{where}: the rows mix kinds of values (or lengths)")
    return array


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for name in archive.files:
                try:
                    arrays[name] = archive[name]
                except ValueError as error:
                    if "allow_pickle" not in str(error):
                        raise
                    raise SampleInputsError(f"{path}: input {name!r} is {_PICKLE_HINT}") from None
    except SampleInputsError:
        raise
    except Exception as error:
        raise SampleInputsError(f"{path}: not a readable .npz archive: {error}") from error
    return arrays


def _read_json(path: Path) -> dict[str, np.ndarray]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SampleInputsError(f"{path}: not readable as JSON: {error}") from error
    if not isinstance(document, dict) or not all(isinstance(v, list) for v in document.values()):
        raise SampleInputsError(
            f"{path}: expected an object whose keys are input names and whose values are "
            "lists of rows"
        )
    return {name: _column(rows, f"{path}: input {name!r}") for name, rows in document.items()}


def _read_jsonl(path: Path) -> dict[str, np.ndarray]:
    columns: dict[str, list[Any]] = {}
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as error:
        raise SampleInputsError(f"{path}: not readable: {error}") from error
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError as error:
            raise SampleInputsError(f"{path}:{number}: not JSON: {error}") from error
        if not isinstance(record, dict):
            raise SampleInputsError(f"{path}:{number}: expected an object of input names")
        if columns and set(record) != set(columns):
            raise SampleInputsError(
                f"{path}:{number}: inputs {sorted(record)}, where line 1 has {sorted(columns)}"
            )
        for name, value in record.items():
            columns.setdefault(name, []).append(value)
    return {name: _column(rows, f"{path}: input {name!r}") for name, rows in columns.items()}


_READERS: Final = {".npz": _read_npz, ".json": _read_json, ".jsonl": _read_jsonl}


def read_inputs_file(path: str | Path) -> dict[str, np.ndarray]:
    """The rows in a ``.npz``, ``.json`` or ``.jsonl`` file, one array per input name."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise SampleInputsError(f"{path}: rows are read from .npz, .json or .jsonl files")
    if not path.is_file():
        raise SampleInputsError(f"{path}: no such file")
    arrays = reader(path)
    if not arrays:
        raise SampleInputsError(f"{path}: holds no inputs")
    return arrays


def read_labels_file(path: str | Path) -> np.ndarray:
    """The labels in a ``.npy`` or ``.json`` file, one per sample row."""
    path = Path(path)
    if not path.is_file():
        raise SampleInputsError(f"{path}: no such file")
    if path.suffix.lower() == ".json":
        try:
            labels = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SampleInputsError(f"{path}: not readable as JSON: {error}") from error
        if not isinstance(labels, list):
            raise SampleInputsError(f"{path}: expected a list of labels, one per sample row")
        return _column(labels, str(path))
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise SampleInputsError(f"{path}: the labels are {_PICKLE_HINT}") from None
        raise SampleInputsError(f"{path}: not a readable .npy file: {error}") from error
    except OSError as error:
        raise SampleInputsError(f"{path}: not a readable .npy file: {error}") from error


def _as_bytes(array: np.ndarray, where: str) -> np.ndarray:
    """Text or bytes as an object array of ``bytes`` (text as UTF-8)."""
    if array.dtype.kind not in "USO":
        raise SampleInputsError(f"{where} holds {array.dtype} values; the model declares BYTES")
    flat = []
    for value in array.ravel().tolist():
        if isinstance(value, str):
            flat.append(value.encode("utf-8"))
        elif isinstance(value, bytes):
            flat.append(value)
        else:
            raise SampleInputsError(f"{where} holds a {type(value).__name__}, not text or bytes")
    converted = np.empty(len(flat), dtype=object)
    converted[:] = flat
    return converted.reshape(array.shape)


def _as_numbers(array: np.ndarray, datatype: str, where: str) -> np.ndarray:
    dtype = numpy_dtype(datatype)
    if array.dtype.kind in "USO":
        raise SampleInputsError(f"{where} holds text; the model declares {datatype}")
    widening = array.dtype.kind in "biu" and dtype.kind in "fc"
    if not (widening or np.can_cast(array.dtype, dtype, casting="same_kind")):
        raise SampleInputsError(
            f"{where} holds {array.dtype} values, which do not fit the declared {datatype}"
        )
    return np.ascontiguousarray(array.astype(dtype, copy=False))


def fit_inputs(
    given: Mapping[str, Any], signature: Signature, origin: str
) -> dict[str, np.ndarray]:
    """The rows as the model declares its inputs: every name, datatype and row shape.

    :param origin: where the rows come from, for messages (``the inputs file rows.npz``).
    :raises SampleInputsError: the rows do not fit, saying which input and how.
    """
    specs = signature.input_specs
    unknown = [name for name in given if name not in specs]
    missing = [name for name in specs if name not in given]
    if unknown or missing:
        parts = [f"no input named {name!r}" for name in unknown]
        parts += [f"input {name!r} is missing" for name in missing]
        raise SampleInputsError(
            f"{origin}: {'; '.join(parts)} (the model's inputs are "
            f"{', '.join(repr(name) for name in specs)})"
        )
    fitted = {}
    rows = None
    for name, spec in specs.items():
        array = np.asarray(given[name])
        where = f"{origin}: input {name!r}"
        if spec.datatype == "BYTES":
            array = _as_bytes(array, where)
        else:
            array = _as_numbers(array, spec.datatype, where)
        if array.ndim == 0 or not spec.accepts_row_shape(array.shape[1:]):
            raise SampleInputsError(
                f"{where} has shape {list(array.shape)}; the model declares {list(spec.shape)}"
            )
        if rows is not None and len(array) != rows:
            raise SampleInputsError(f"{where} has {len(array)} rows, the other inputs {rows}")
        rows = len(array)
        fitted[name] = array
    return fitted


def plugin_examples(subject: InProcessSubject, rows: int) -> dict[str, np.ndarray] | None:
    """The plugin's own rows for the model (``ketch_example_inputs``), checked; None if none.

    :raises ConformanceFailure: the hook failed, or gave rows that do not fit the signature.
    """
    try:
        examples = subject.framework.example_inputs(subject.model, rows)
    except PluginFault:
        raise
    except Exception as error:
        raise ConformanceFailure(
            f"ketch_example_inputs raised {error_name(error)}: {error}"
        ) from error
    if examples is None:
        return None
    try:
        count = validate_inputs(subject.signature, examples)
    except (InvalidInputError, ContractViolation) as error:
        raise ConformanceFailure(
            f"ketch_example_inputs returned rows that do not fit the model's signature: {error}"
        ) from error
    if count != rows:
        raise ConformanceFailure(f"ketch_example_inputs returned {count} rows; {rows} were asked")
    return {name: np.asarray(examples[name]) for name in subject.signature.input_specs}


def choose_sample_inputs(
    given: Mapping[str, Any] | None, subject: InProcessSubject, origin: str
) -> tuple[dict[str, np.ndarray], str]:
    """The sample rows (at most ``max_batch``), and where they come from.

    :param given: the target's own rows, or None.
    :param origin: how to name the target's rows in messages.
    :raises SampleInputsError: the target's rows do not fit, or are too few.
    :raises ConformanceFailure: the plugin's example rows do not fit its signature.
    """
    signature = subject.signature
    if given is not None:
        inputs, source = fit_inputs(given, signature, origin), origin
    else:
        examples = plugin_examples(subject, SAMPLE_ROWS)
        if examples is not None:
            inputs, source = examples, "the plugin's ketch_example_inputs"
        else:
            inputs, source = random_inputs(signature), RANDOM
    max_batch = signature.capabilities.max_batch
    if max_batch is not None and len(next(iter(inputs.values()))) > max_batch:
        inputs = take_rows(inputs, slice(0, max_batch))
    least = min(MIN_SAMPLE_ROWS, max_batch or MIN_SAMPLE_ROWS)
    if len(next(iter(inputs.values()))) < least:
        raise SampleInputsError(f"{source}: the suite needs at least {least} sample rows")
    return inputs, source


def check_labels(labels: np.ndarray | None, rows: int, origin: str) -> None:
    """SampleInputsError unless there is a label for each of the ``rows`` sample rows."""
    if labels is not None and len(np.asarray(labels)) < rows:
        raise SampleInputsError(f"{origin} has {len(np.asarray(labels))} labels for {rows} rows")
