"""Core rules about answers and errors that every wrapper keeps, in process and over gRPC."""

from __future__ import annotations

from typing import Final

import numpy as np

from ketch import (
    DeviceUnavailableError,
    Signature,
    TensorSpec,
    WrapperStartError,
    start_wrapper,
)
from ketch.proto import grpc_service_pb2 as pb
from ketch.wire import infer_request
from ketch_conformance.failures import ConformanceFailure, assert_outputs_equal
from ketch_conformance.faults import PluginFault
from ketch_conformance.registry import (
    IN_PROCESS,
    OVER_GRPC,
    CheckContext,
    check,
    concatenate,
    grpc_subject,
    in_process_subject,
    singles,
)
from ketch_conformance.samples import take_rows
from ketch_conformance.subjects import GrpcSubject, InProcessSubject, error_name

__all__ = ["IMPOSSIBLE_DEVICES", "RULES"]

IMPOSSIBLE_DEVICES: Final = ("no-such-device", "cuda:99")


# --- core rules, in process and over gRPC -------------------------------------------------------


@check("loads", "the model loads, places on its device, and declares a signature")
def check_loads(context: CheckContext) -> None:
    """In process, load afresh through the hooks; over gRPC, the process reports ready."""
    if isinstance(context.subject, GrpcSubject):
        client = context.subject.client
        if not (client.ready() and client.model_ready()):
            raise ConformanceFailure("the wrapper printed its ready line but reports not ready")
        if client.health() != "SERVING":
            raise ConformanceFailure(f"grpc.health.v1 says {client.health()}, not SERVING")
        return
    subject = in_process_subject(context).load_fresh(context.target)
    if not isinstance(subject.signature, Signature):
        raise ConformanceFailure("ketch_signature did not return a ketch.Signature")


@check("signature_matches_outputs", "real outputs have the declared names, datatypes and shapes")
def check_signature_matches_outputs(context: CheckContext) -> None:
    """Predict the sample and hold every output to the signature."""
    outputs = context.predict(context.inputs)
    undeclared = sorted(set(outputs) - set(context.signature.output_specs))
    if undeclared and isinstance(context.subject, InProcessSubject):
        raise ConformanceFailure(f"outputs {', '.join(undeclared)} are not in the signature")


@check("one_row_per_input", "a batch of N rows gives exactly N rows of every output")
def check_one_row_per_input(context: CheckContext) -> None:
    """Batches of 1, 2, 3 and all sample rows."""
    for rows in sorted({1, 2, 3, context.rows}):
        outputs = context.subject.predict(take_rows(context.inputs, slice(0, rows)))
        for name in context.signature.output_specs:
            got = np.asarray(outputs.get(name, np.empty(0))).shape
            count = got[0] if got else 0
            if count != rows:
                raise ConformanceFailure(
                    f"{context.subject.label}: a batch of {rows} rows gave {count} rows of "
                    f"output {name!r}"
                )


@check("rows_in_order", "output row i answers input row i, whatever the order of the batch")
def check_rows_in_order(context: CheckContext) -> None:
    """A shuffled batch gives the shuffled answers; each batch row equals that row asked alone."""
    order = list(reversed(range(context.rows)))
    order[0], order[1] = order[1], order[0]
    whole = context.predict(context.inputs)
    shuffled = context.predict(take_rows(context.inputs, order))
    expected = {name: array[order] for name, array in whole.items()}
    assert_outputs_equal(
        expected,
        shuffled,
        context.tolerance,
        "the outputs of a shuffled batch are not in its order",
    )
    ends = [0, context.rows - 1]
    assert_outputs_equal(
        singles(context, ends),
        {name: array[ends] for name, array in whole.items()},
        context.tolerance,
        "the first and last rows of a batch do not answer the first and last inputs",
    )


@check("batch_equals_singles", "a batch of N rows equals N single-row calls, within the tolerance")
def check_batch_equals_singles(context: CheckContext) -> None:
    """Every sample row asked alone, against the whole batch."""
    assert_outputs_equal(
        singles(context, range(context.rows)),
        context.predict(context.inputs),
        context.tolerance,
        "a batch's answers differ from the same rows asked one at a time",
    )


@check("rows_independent", "a row's answer does not depend on the other rows of its batch")
def check_rows_independent(context: CheckContext) -> None:
    """The first half of the sample, alone, with the other half, and with copies of one row."""
    half = max(context.rows // 2, 1)
    head = take_rows(context.inputs, slice(0, half))
    alone = context.predict(head)
    copies = min(3 * half, (context.max_batch or 3 * half + half) - half)
    companions = (
        ("the other sample rows", take_rows(context.inputs, slice(half, context.rows))),
        ("copies of the last row", take_rows(context.inputs, [context.rows - 1] * copies)),
    )
    for description, others in companions:
        mixed = context.predict(concatenate(head, others))
        assert_outputs_equal(
            alone,
            {name: array[:half] for name, array in mixed.items()},
            context.tolerance,
            f"rows answer differently when batched with {description}",
        )


@check("empty_batch", "a batch of zero rows gives zero rows of every declared output")
def check_empty_batch(context: CheckContext) -> None:
    """Zero rows in, zero rows out, with the declared datatypes and row shapes."""
    context.predict(take_rows(context.inputs, slice(0, 0)))


def _misshapen(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    """The same rows with one column too many, or an extra axis where every size is free."""
    fixed = [axis for axis, size in enumerate(spec.row_shape, start=1) if size >= 0]
    if fixed:
        axis = fixed[-1]
        extra = np.take(array, [0], axis=axis)
        return np.concatenate([array, extra], axis=axis)
    return np.stack([array, array], axis=-1)


@check("bad_shape_rejected", "a wrongly shaped input is a clear error that names the input")
def check_bad_shape_rejected(context: CheckContext) -> None:
    """One column too many (or an extra axis) on the first input."""
    spec = context.signature.inputs[0]
    bad = dict(context.inputs)
    bad[spec.name] = _misshapen(spec, np.asarray(context.inputs[spec.name]))
    what = (
        f"input {spec.name!r} of shape {list(bad[spec.name].shape)} (declared {list(spec.shape)})"
    )
    message = context.subject.rejection(bad, what)
    if spec.name not in message:
        raise ConformanceFailure(f"{what}: the error does not name the input: {message!r}")


# --- placement, in process ------------------------------------------------------------------


@check("place_cpu", "the model can be placed on the CPU", transports=(IN_PROCESS,))
def check_place_cpu(context: CheckContext) -> None:
    """``ketch_place(model, 'cpu')`` returns a handle that predicts."""
    subject = in_process_subject(context)
    try:
        placed = subject.framework.place(subject.model, "cpu")
    except PluginFault:
        raise
    except Exception as error:
        raise ConformanceFailure(
            f"ketch_place(model, 'cpu') raised {error_name(error)}: {error}"
        ) from error
    subject.framework.batch_predict(placed, take_rows(context.inputs, slice(0, 1)))


@check(
    "impossible_device_rejected",
    "placing on a device that does not exist is a clear error naming it and the devices there are",
    transports=(IN_PROCESS,),
)
def check_impossible_device_rejected(context: CheckContext) -> None:
    """``ketch_place`` on made-up devices raises DeviceUnavailableError naming the device."""
    subject = in_process_subject(context)
    for device in IMPOSSIBLE_DEVICES:
        try:
            subject.framework.place(subject.model, device)
        except DeviceUnavailableError as error:
            if device not in str(error):
                raise ConformanceFailure(
                    f"placing on {device!r}: the error does not name the device: {error}"
                ) from error
            continue
        except PluginFault:
            raise
        except Exception as error:
            raise ConformanceFailure(
                f"placing on {device!r} raised {error_name(error)}: {error}; the contract "
                "asks for ketch.DeviceUnavailableError naming the device and those available"
            ) from error
        raise ConformanceFailure(f"placing on {device!r} succeeded; that device does not exist")


# --- the wire, over gRPC ----------------------------------------------------------------------


@check(
    "metadata_matches_signature",
    "ModelMetadata reports the declared inputs and outputs",
    transports=(OVER_GRPC,),
)
def check_metadata_matches_signature(context: CheckContext) -> None:
    """The OIP metadata against the signature the hooks declare."""
    metadata = grpc_subject(context).client.model_metadata()
    for kind, declared, reported in (
        ("inputs", context.signature.inputs, metadata.inputs),
        ("outputs", context.signature.outputs, metadata.outputs),
    ):
        if tuple(declared) != tuple(reported):
            raise ConformanceFailure(
                f"ModelMetadata reports {kind} {list(reported)}, the signature declares "
                f"{list(declared)}"
            )


def _other_datatype(datatype: str) -> str:
    return {"FP32": "FP64", "BYTES": "FP32"}.get(datatype, "FP32" if datatype != "FP32" else "FP64")


@check(
    "bad_datatype_rejected",
    "an input of the wrong datatype is INVALID_ARGUMENT naming the input",
    transports=(OVER_GRPC,),
)
def check_bad_datatype_rejected(context: CheckContext) -> None:
    """The first input sent with another datatype."""
    subject = grpc_subject(context)
    spec = context.signature.inputs[0]
    wrong = _other_datatype(spec.datatype)
    bad = dict(context.inputs)
    shape = np.asarray(context.inputs[spec.name]).shape
    bad[spec.name] = np.zeros(shape, dtype=np.float64 if wrong == "FP64" else np.float32)
    message = subject.rejection(bad, f"input {spec.name!r} as {wrong} (declared {spec.datatype})")
    if spec.name not in message:
        raise ConformanceFailure(f"the datatype error does not name the input: {message!r}")


@check(
    "bad_byte_count_rejected",
    "raw contents whose size does not match the shape are INVALID_ARGUMENT",
    transports=(OVER_GRPC,),
)
def check_bad_byte_count_rejected(context: CheckContext) -> None:
    """Raw contents with their last byte cut off."""
    subject = grpc_subject(context)
    request = infer_request(context.inputs, model=subject.process.ready.model)
    request.raw_input_contents[0] = request.raw_input_contents[0][:-1]
    subject.raw_rejection(request, "raw contents one byte short")


@check(
    "wrong_tensor_count_rejected",
    "a missing or unknown input tensor is INVALID_ARGUMENT",
    transports=(OVER_GRPC,),
)
def check_wrong_tensor_count_rejected(context: CheckContext) -> None:
    """One input too many, then one too few."""
    subject = grpc_subject(context)
    extra = {**context.inputs, "no_such_input": np.zeros((context.rows, 1), np.float32)}
    subject.rejection(extra, "an unknown extra input 'no_such_input'")
    first = context.signature.inputs[0].name
    missing = {name: array for name, array in context.inputs.items() if name != first}
    request = infer_request(missing, model=subject.process.ready.model)
    message = subject.raw_rejection(request, f"input {first!r} left out")
    if first not in message:
        raise ConformanceFailure(f"the error does not name the missing input: {message!r}")


@check(
    "unknown_model_not_found",
    "a request for a model the wrapper does not serve is NOT_FOUND",
    transports=(OVER_GRPC,),
)
def check_unknown_model_not_found(context: CheckContext) -> None:
    """ModelInfer for ``no-such-model``."""
    subject = grpc_subject(context)
    request = infer_request(context.inputs, model="no-such-model")
    subject.raw_rejection(request, "model 'no-such-model'", code="NOT_FOUND")


@check(
    "survives_bad_input",
    "after garbage requests the process still serves correct answers",
    transports=(OVER_GRPC,),
)
def check_survives_bad_input(context: CheckContext) -> None:
    """Garbage datatypes, shapes and bytes, then the sample again."""
    subject = grpc_subject(context)
    before = context.predict(context.inputs)
    model = subject.process.ready.model
    spec = context.signature.inputs[0]
    garbage = [
        pb.ModelInferRequest(
            model_name=model,
            inputs=[
                pb.ModelInferRequest.InferInputTensor(name=spec.name, datatype="NOPE", shape=[1])
            ],
            raw_input_contents=[b"\x00"],
        ),
        pb.ModelInferRequest(
            model_name=model,
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name=spec.name, datatype="FP32", shape=[-3, 2]
                )
            ],
            raw_input_contents=[b""],
        ),
        pb.ModelInferRequest(
            model_name=model,
            inputs=[
                pb.ModelInferRequest.InferInputTensor(name=spec.name, datatype="BYTES", shape=[2])
            ],
            raw_input_contents=[b"\xff\xff\xff\x7fabc"],
        ),
    ]
    for request in garbage:
        subject.raw_rejection(request, f"a garbage request ({request.inputs[0].datatype})")
    if not subject.alive():
        raise ConformanceFailure("the wrapper process died after bad input")
    assert_outputs_equal(
        before,
        context.predict(context.inputs),
        context.tolerance,
        "answers changed after bad input",
    )


@check(
    "impossible_device_refused_at_start",
    "ketch serve on a device that does not exist exits with an error naming the device",
    transports=(OVER_GRPC,),
)
def check_impossible_device_refused_at_start(context: CheckContext) -> None:
    """Start a second wrapper with ``--device no-such-device``."""
    target = context.target
    device = IMPOSSIBLE_DEVICES[0]
    try:
        process = start_wrapper(
            target.plugin,
            target.model_path,
            device=device,
            options=target.options,
            env=target.env,
            echo_stderr=False,
        )
    except WrapperStartError as error:
        if device not in str(error):
            raise ConformanceFailure(
                f"ketch serve --device {device} failed without naming the device: {error}"
            ) from error
        return
    process.stop()
    raise ConformanceFailure(f"ketch serve --device {device} started; that device does not exist")


RULES: Final = (
    check_loads,
    check_signature_matches_outputs,
    check_one_row_per_input,
    check_rows_in_order,
    check_batch_equals_singles,
    check_rows_independent,
    check_empty_batch,
    check_bad_shape_rejected,
    check_place_cpu,
    check_impossible_device_rejected,
    check_metadata_matches_signature,
    check_bad_datatype_rejected,
    check_bad_byte_count_rejected,
    check_wrong_tensor_count_rejected,
    check_unknown_model_not_found,
    check_survives_bad_input,
    check_impossible_device_refused_at_start,
)
"""This module's checks, in the order the suite runs them."""
