"""Reading estimators from skops files (safe) and pickle or joblib files (by consent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from ketch import ModelLoadError
from ketch_sklearn.options import SklearnOptions

__all__ = ["PICKLE_SUFFIXES", "SKOPS_SUFFIXES", "file_format", "read_estimator"]

SKOPS_SUFFIXES: Final = (".skops",)
PICKLE_SUFFIXES: Final = {".joblib": "joblib", ".pkl": "pickle", ".pickle": "pickle"}


def file_format(path: Path, options: SklearnOptions) -> str | None:
    """``skops``, ``joblib`` or ``pickle``; None when this is not a scikit-learn file."""
    if options.file_format != "auto":
        return options.file_format
    suffix = path.suffix.lower()
    if suffix in SKOPS_SUFFIXES:
        return "skops"
    return PICKLE_SUFFIXES.get(suffix)


def _read_skops(path: Path, options: SklearnOptions) -> Any:
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as error:
        raise ModelLoadError(f"{path} is not a readable skops file: {error}") from error
    refused = sorted(set(untrusted) - set(options.trusted_types))
    if refused and not options.trust_pickle:
        raise ModelLoadError(
            f"{path} holds types that skops does not trust by default: {', '.join(refused)}. "
            "If you trust the file, list them in the option trusted_types="
            f"{','.join(refused)}"
        )
    return skops.io.load(path, trusted=list(untrusted))


def _read_pickle(path: Path, kind: str, options: SklearnOptions) -> Any:
    if not options.trust_pickle:
        raise ModelLoadError(
            f"{path} is a {kind} file, and loading one runs any code it contains. Load it "
            "only if you trust where it came from: pass --trust-pickle (or the option "
            "trust_pickle=true), or save the model with skops.io.dump instead"
        )
    import joblib

    try:
        return joblib.load(path)
    except Exception as error:
        raise ModelLoadError(f"{path} is not a readable {kind} file: {error}") from error


def read_estimator(path: Path, options: SklearnOptions) -> Any | None:
    """The object saved at ``path``, or None when the file is not a scikit-learn kind."""
    kind = file_format(path, options)
    if kind is None:
        return None
    if not path.is_file():
        raise ModelLoadError(f"{path} is not a file")
    if kind == "skops":
        return _read_skops(path, options)
    return _read_pickle(path, kind, options)
