"""Ketch's Vowpal Wabbit plugin: serve VW models and let them learn online while they serve.

The hooks live in :mod:`ketch_vw.plugin`; this package re-exports the handle type,
the option names and the helpers that turn rows into VW examples, for those who
train models to serve with it.
"""

from ketch_vw.arguments import SIDECAR_SUFFIX, sidecar_path
from ketch_vw.examples import dense_example
from ketch_vw.model import PLATFORM, VwModel
from ketch_vw.options import KNOWN_OPTIONS, VwOptions
from ketch_vw.tasks import Task

__all__ = [
    "KNOWN_OPTIONS",
    "PLATFORM",
    "SIDECAR_SUFFIX",
    "Task",
    "VwModel",
    "VwOptions",
    "dense_example",
    "sidecar_path",
]
