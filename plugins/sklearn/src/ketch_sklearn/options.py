"""The options the scikit-learn plugin understands, checked once at load time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ketch import ModelLoadError, ModelSpec, check_options, option_choice, option_names
from ketch_sklearn.columns import COLUMN_DATATYPES, NUMERIC_DATATYPES

__all__ = ["INPUT_KINDS", "KNOWN_OPTIONS", "METHODS", "SklearnOptions"]

METHODS: Final = ("predict", "predict_proba", "predict_log_proba", "decision_function")
INPUT_KINDS: Final = ("auto", "numeric", "text", "columns")
FORMATS: Final = ("auto", "skops", "joblib", "pickle")

KNOWN_OPTIONS: Final[dict[str, str]] = {
    "method": f"comma-separated outputs to compute, from {', '.join(METHODS)} (default predict)",
    "input": "auto (default), numeric, text or columns: what a row is",
    "input_name": "the input tensor's name (default input)",
    "input_datatype": "the numeric input's datatype (default FP64)",
    "n_features": "features per row, when the estimator does not record n_features_in_",
    "columns": "comma-separated NAME:DATATYPE of DataFrame columns whose datatype the "
    "estimator does not reveal (BYTES for strings, BOOL, FP64, INT64, ...)",
    "format": "auto (default, from the file's suffix), skops, joblib or pickle",
    "trust_pickle": "true to allow pickle and joblib files, which run code when loaded",
    "trusted_types": "comma-separated extra types to trust in a skops file",
}


def _declared_columns(spec: ModelSpec) -> dict[str, str]:
    """The option ``columns`` (``NAME:DATATYPE,...``) as a dict; ModelLoadError for a bad entry."""
    declared: dict[str, str] = {}
    for entry in option_names(spec, "columns"):
        name, _, datatype = entry.rpartition(":")
        name, datatype = name.strip(), datatype.strip().upper()
        if not name or datatype not in COLUMN_DATATYPES:
            raise ModelLoadError(
                f"option columns: {entry!r} is not NAME:DATATYPE with a datatype from "
                f"{', '.join(COLUMN_DATATYPES)}"
            )
        if name in declared:
            raise ModelLoadError(f"option columns names the column {name!r} twice")
        declared[name] = datatype
    return declared


@dataclass(frozen=True, slots=True)
class SklearnOptions:
    """The plugin's options with their defaults applied."""

    methods: tuple[str, ...]
    input_kind: str
    input_name: str
    input_datatype: str
    n_features: int | None
    declared_columns: dict[str, str]
    file_format: str
    trust_pickle: bool
    trusted_types: tuple[str, ...]

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> SklearnOptions:
        """The options in ``spec``; ModelLoadError names an unknown or malformed one."""
        check_options(spec, KNOWN_OPTIONS, "sklearn")
        methods = option_names(spec, "method") or ("predict",)
        bad = [method for method in methods if method not in METHODS]
        if bad:
            raise ModelLoadError(
                f"option method: {', '.join(bad)} is not one of {', '.join(METHODS)}"
            )
        if len(set(methods)) != len(methods):
            raise ModelLoadError(f"option method names a method twice: {','.join(methods)}")
        n_features_text = spec.option("n_features")
        n_features: int | None = None
        if n_features_text is not None:
            try:
                n_features = int(n_features_text)
            except ValueError:
                raise ModelLoadError(
                    f"option n_features={n_features_text!r} is not a whole number"
                ) from None
            if n_features < 1:
                raise ModelLoadError(f"option n_features={n_features} must be at least 1")
        return cls(
            methods=methods,
            input_kind=option_choice(spec, "input", INPUT_KINDS, "auto"),
            input_name=(spec.option("input_name") or "input").strip(),
            input_datatype=option_choice(spec, "input_datatype", NUMERIC_DATATYPES, "FP64"),
            n_features=n_features,
            declared_columns=_declared_columns(spec),
            file_format=option_choice(spec, "format", FORMATS, "auto"),
            trust_pickle=spec.flag("trust_pickle"),
            trusted_types=option_names(spec, "trusted_types"),
        )
