"""Ketch's scikit-learn plugin: serve any estimator or pipeline saved with skops.

The hooks live in :mod:`ketch_sklearn.plugin`; this package re-exports the
handle type and the option names for those who build on it.
"""

from ketch_sklearn.model import PLATFORM, SklearnModel
from ketch_sklearn.options import KNOWN_OPTIONS, METHODS, SklearnOptions

__all__ = ["KNOWN_OPTIONS", "METHODS", "PLATFORM", "SklearnModel", "SklearnOptions"]
