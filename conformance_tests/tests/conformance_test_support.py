"""Helpers for the suite's own tests: contexts for a plugin named ``module:attribute``."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ketch import Signature, WrapperProcess, start_wrapper
from ketch_conformance import (
    CheckContext,
    ConformanceTarget,
    GrpcSubject,
    IsolatedSubject,
    load_in_process,
)

TESTS_DIR = Path(__file__).parent
TEST_PLUGINS_ENV = {"PYTHONPATH": str(TESTS_DIR)}
"""What a ``ketch serve`` child needs to import the test plugins in this folder."""


def plugin_object(reference: str) -> object:
    """The object that ``module:attribute`` names."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def target_for(
    reference: str, model: Path, inputs: Mapping[str, np.ndarray], **fields: Any
) -> ConformanceTarget:
    """A target for the test plugin ``reference``, which this process and children can import."""
    return ConformanceTarget(
        reference,
        model,
        plugin_object=plugin_object(reference),
        sample_inputs=inputs,
        env=TEST_PLUGINS_ENV,
        **fields,
    )


def in_process_context(
    reference: str, model: Path, inputs: Mapping[str, np.ndarray], **fields: Any
) -> CheckContext:
    """The context an in-process check of the test plugin ``reference`` gets."""
    target = target_for(reference, model, inputs, **fields)
    subject = load_in_process(target)
    return CheckContext(subject, dict(inputs), subject.signature.capabilities.tolerance, target)


@contextmanager
def isolated_context(
    reference: str, model: Path, inputs: Mapping[str, np.ndarray], **fields: Any
) -> Iterator[CheckContext]:
    """The context the suite gives in-process checks: the hooks in a worker process."""
    target = target_for(reference, model, inputs, **fields)
    subject = IsolatedSubject.start(target)
    try:
        yield CheckContext(subject, dict(inputs), subject.signature.capabilities.tolerance, target)
    finally:
        subject.close()


@contextmanager
def grpc_context(
    reference: str,
    model: Path,
    inputs: Mapping[str, np.ndarray],
    *,
    signature: Signature | None = None,
    stop_timeout: float = 30.0,
    **fields: Any,
) -> Iterator[CheckContext]:
    """A ``ketch serve`` process for the test plugin ``reference``, and the context of its checks.

    Like the suite's, the subject starts a fresh process after one died or hung.

    :param signature: the plugin's signature, when loading the plugin in this process
        is unwelcome (it would start threads here); else it is loaded to learn it.
    """
    target = target_for(reference, model, inputs, **fields)
    if signature is None:
        signature = load_in_process(target).signature

    def start() -> WrapperProcess:
        return start_wrapper(
            reference, model, env=target.env, options=target.options, echo_stderr=False
        )

    process = start()
    subject = GrpcSubject(process, signature, call_timeout=target.call_timeout, restart=start)
    try:
        yield CheckContext(subject, dict(inputs), signature.capabilities.tolerance, target)
    finally:
        subject.close()
        process.stop(timeout=stop_timeout)


def ketch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the ``ketch`` command in ``cwd`` with the test plugins importable."""
    return subprocess.run(
        [sys.executable, "-m", "ketch", *args],
        cwd=cwd,
        env={**os.environ, **TEST_PLUGINS_ENV},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
