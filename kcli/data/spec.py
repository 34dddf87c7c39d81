"""The `data:` section of a recipe: sources and splits (no numpy, no torch); the preprocess
steps' specs are in kcli.data.steps.

`DataSpec` is the whole mapping; `SourceSpec` is what `validation:` and `test:` hold (the same
source options, no splits). Which keys apply depends on the kind of source, found from the
`source` string; a key that does not apply to it is an error that says which kinds take it.
Defaults: `validation_split` and `test_split` are 0, so there is no validation or test split unless
a recipe asks for one (a fraction or an explicit source).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from kcli.data.steps import StepRef
from kcli.data.synthetic import SYNTHETIC_PARAMS
from kcli.errors import did_you_mean
from kcli.registry import Spec

SKLEARN_DATASETS = ("iris", "digits", "wine", "breast_cancer", "diabetes")
FILE_SUFFIXES = (".npz", ".npy", ".csv")


def source_kind(source: str) -> tuple[str, str]:
    """`sklearn:iris` -> ('sklearn', 'iris'); `data/x.npz` -> ('npz', 'data/x.npz'); etc.

    Kinds: sklearn, synthetic, python, npz, npy, csv. Raises ValueError (with the options) for a
    string that is none of them.
    """
    prefix, sep, rest = source.partition(":")
    if sep and prefix == "sklearn":
        if rest not in SKLEARN_DATASETS:
            raise ValueError(
                f"unknown scikit-learn data set '{rest}'{did_you_mean(rest, SKLEARN_DATASETS)}; "
                f"one of {', '.join(SKLEARN_DATASETS)}"
            )
        return "sklearn", rest
    if sep and prefix == "synthetic":
        if rest not in SYNTHETIC_PARAMS:
            raise ValueError(
                f"unknown synthetic generator '{rest}'{did_you_mean(rest, SYNTHETIC_PARAMS)}; "
                f"one of {', '.join(SYNTHETIC_PARAMS)}"
            )
        return "synthetic", rest
    if sep and prefix == "python":
        module, colon, function = rest.rpartition(":")
        if not colon or not module or not function.isidentifier():
            raise ValueError(f"a python source is 'python:package.module:function', got '{source}'")
        return "python", rest
    for suffix in FILE_SUFFIXES:
        if source.lower().endswith(suffix):
            return suffix[1:], source
    raise ValueError(
        f"cannot tell what '{source}' is: expected sklearn:NAME, synthetic:NAME, "
        f"python:module:function, or a path ending in {', '.join(FILE_SUFFIXES)}"
    )


def _names(value: Any) -> list[str]:
    """The names a y/target value gives: one, a list, or a mapping's values."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value.values()) if isinstance(value, dict) else list(value)


def _kind_of(info: ValidationInfo) -> str | None:
    """The kind of the already-validated `source` field, or None if it failed."""
    source = info.data.get("source")
    return None if source is None else source_kind(source)[0]


def _check_string_columns(value: list[str], info: ValidationInfo) -> None:
    """`strings:` columns are model inputs of their own: not features, not categorical."""
    for key in ("features", "categorical"):
        both = [c for c in value if c in (info.data.get(key) or [])]
        if both:
            raise PydanticCustomError(
                "string_and_feature",
                "column(s) {both} are also under '{key}': a string column is a model input of "
                "its own, fed to a StringLookup or TextVectorization layer",
                {"both": ", ".join(both), "key": key},
            )
    if "features" in value:
        raise PydanticCustomError(
            "string_named_features",
            "a string column cannot be called 'features': that is the name of the input the "
            "other feature columns form",
        )


def _only_for(key: str, kinds: tuple[str, ...], kind: str, source: str) -> PydanticCustomError:
    return PydanticCustomError(
        "not_for_source",
        "'{key}' only applies to {kinds} sources, not to '{source}'",
        {"key": key, "kinds": ", ".join(kinds), "source": source},
    )


class SourceSpec(Spec):
    """Where one set of arrays comes from, and how to read it."""

    source: str = Field(
        description="sklearn:NAME, synthetic:NAME, python:module:function, or a .npz/.npy/.csv "
        "path (relative to the recipe's folder)."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="synthetic: the generator's parameters (checked per generator); python: "
        "keyword arguments for the function.",
    )
    x: str | dict[str, str] | None = Field(
        None,
        description=".npz: the array holding x (default 'x'), or input-name -> array-name for "
        "a multi-input model.",
    )
    y: str | list[str] | dict[str, str] | None = Field(
        None,
        description=".npz: the array holding y (default 'y'); .npy: the path of y's file. A "
        "model of several outputs: a mapping output name -> array (or path), or a list in "
        "output order.",
    )
    target: str | list[str] | dict[str, str] | None = Field(
        None,
        description=".csv: the target column (required); several outputs: a mapping output "
        "name -> column, or a list in output order.",
    )
    sample_weight: str | dict[str, str] | None = Field(
        None,
        description="Per-sample weights: .npz an array name, .npy a path, .csv a column; or a "
        "mapping output name -> one of those for weights by output.",
    )
    features: list[str] | None = Field(
        None, description=".csv: the feature columns, in order (default: all but the target)."
    )
    categorical: list[str] = Field(
        default_factory=list, description=".csv: feature columns to one-hot encode."
    )
    strings: list[str] = Field(
        default_factory=list,
        description=".csv: columns kept as strings, each fed whole to a model input of its own "
        "named after the column (shape [1], Keras' dtype='string') for a StringLookup or "
        "TextVectorization layer; the other feature columns form the input 'features'.",
    )
    steps_per_epoch: int | None = Field(
        None, gt=0, description="python generator sources: batches per epoch (default: all)."
    )

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        try:
            source_kind(value)
        except ValueError as err:
            raise PydanticCustomError("unknown_source", str(err)) from None
        return value

    @field_validator("params")
    @classmethod
    def _check_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        kind = _kind_of(info)
        if kind == "synthetic":
            name = source_kind(info.data["source"])[1]
            # A ValidationError raised here keeps its nested locations (data.params.noise).
            return SYNTHETIC_PARAMS[name].model_validate(value).model_dump()
        if value and kind not in (None, "python"):
            raise _only_for("params", ("synthetic:", "python:"), kind, info.data["source"])
        return value

    @field_validator("x")
    @classmethod
    def _check_x(cls, value: Any, info: ValidationInfo) -> Any:
        kind = _kind_of(info)
        if value is not None and kind not in (None, "npz"):
            raise _only_for("x", (".npz",), kind, info.data["source"])
        if isinstance(value, dict) and not value:
            raise PydanticCustomError("empty_inputs", "the x mapping names no inputs")
        return value

    @field_validator("y")
    @classmethod
    def _check_y(cls, value: Any, info: ValidationInfo) -> Any:
        kind = _kind_of(info)
        if kind == "npy" and value is None:
            raise PydanticCustomError(
                "missing_y", "a .npy source needs 'y': the path of the labels' .npy file"
            )
        if isinstance(value, dict | list) and not value:
            raise PydanticCustomError("empty_targets", "names no targets")
        for path in _names(value) if kind == "npy" else ():
            if not path.lower().endswith(".npy"):
                raise PydanticCustomError(
                    "bad_y",
                    "with a .npy source, 'y' is the path of a .npy file, got '{y}'",
                    {"y": path},
                )
        if value is not None and kind not in (None, "npz", "npy"):
            raise _only_for("y", (".npz", ".npy"), kind, info.data["source"])
        return value

    @field_validator("target")
    @classmethod
    def _check_target(cls, value: Any, info: ValidationInfo) -> Any:
        kind = _kind_of(info)
        if isinstance(value, dict | list) and not value:
            raise PydanticCustomError("empty_targets", "names no target columns")
        if kind == "csv" and value is None:
            raise PydanticCustomError("missing_target", "a .csv source needs 'target': a column")
        if value is not None and kind not in (None, "csv"):
            raise _only_for("target", (".csv",), kind, info.data["source"])
        return value

    @field_validator("features", "categorical", "strings")
    @classmethod
    def _check_columns(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        kind = _kind_of(info)
        if value and kind not in (None, "csv"):
            raise _only_for(info.field_name, (".csv",), kind, info.data["source"])
        if value and len(set(value)) != len(value):
            raise PydanticCustomError("duplicate_columns", "lists a column twice")
        for target in _names(info.data.get("target")):
            if value and target in value:
                raise PydanticCustomError(
                    "target_in_features", "lists the target column '{target}'", {"target": target}
                )
        if info.field_name == "categorical" and value and info.data.get("features"):
            missing = [c for c in value if c not in info.data["features"]]
            if missing:
                raise PydanticCustomError(
                    "categorical_not_feature",
                    "column(s) {missing} are not in 'features'",
                    {"missing": ", ".join(missing)},
                )
        if info.field_name == "strings" and value:
            _check_string_columns(value, info)
        return value

    @field_validator("sample_weight")
    @classmethod
    def _check_sample_weight(cls, value: Any, info: ValidationInfo) -> Any:
        kind = _kind_of(info)
        if value is not None and kind not in (None, "npz", "npy", "csv"):
            raise _only_for("sample_weight", (".npz", ".npy", ".csv"), kind, info.data["source"])
        return value

    @field_validator("steps_per_epoch")
    @classmethod
    def _check_steps(cls, value: int | None, info: ValidationInfo) -> int | None:
        kind = _kind_of(info)
        if value is not None and kind not in (None, "python"):
            raise _only_for("steps_per_epoch", ("python: (generator)",), kind, info.data["source"])
        return value

    def kind(self) -> str:
        """sklearn, synthetic, python, npz, npy or csv."""
        return source_kind(self.source)[0]


# ---------------------------------------------------------------- the data section


def _source_shorthand(value: Any) -> Any:
    """`validation: data/val.npz` == `validation: {source: data/val.npz}`."""
    return {"source": value} if isinstance(value, str) else value


NestedSource = Annotated[SourceSpec, BeforeValidator(_source_shorthand)]

# Options a `validation:`/`test:` source of the same kind takes from the main one when it does
# not give its own (the same CSV target, the same npz array names).
_INHERITED = {"csv": ("target", "features", "categorical", "strings"), "npz": ("x", "y")}


class DataSpec(SourceSpec):
    """The recipe's `data:` mapping: a source, how to split it, how to preprocess it."""

    validation_split: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Fraction held out for validation (random, seeded, "
        "stratified for class targets); 0: none unless `validation:` is given.",
    )
    test_split: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Fraction held out for the final test; 0: none unless `test:` is given.",
    )
    validation: NestedSource | None = Field(None, description="An explicit validation source.")
    test: NestedSource | None = Field(None, description="An explicit test source.")
    preprocess: list[StepRef] = Field(
        default_factory=list, description="Steps in order, fitted on the train split only."
    )

    @model_validator(mode="before")
    @classmethod
    def _inherit_options(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("source"), str):
            return data
        try:
            kind = source_kind(data["source"])[0]
        except ValueError:
            return data  # the field validator reports it
        out = dict(data)
        for split in ("validation", "test"):
            nested = _source_shorthand(out.get(split))
            if not isinstance(nested, dict) or not isinstance(nested.get("source"), str):
                continue
            try:
                same = source_kind(nested["source"])[0] == kind
            except ValueError:
                continue
            inherited = {k: data[k] for k in _INHERITED.get(kind, ()) if k in data}
            out[split] = {**inherited, **nested} if same else nested
        return out

    @model_validator(mode="after")
    def _check_splits(self) -> DataSpec:
        if self.validation_split + self.test_split >= 1:
            raise PydanticCustomError(
                "splits_too_large",
                "validation_split + test_split must be < 1 (got {v} + {t}), or nothing is left "
                "to train on",
                {"v": self.validation_split, "t": self.test_split},
            )
        for name, split in (("validation", self.validation_split), ("test", self.test_split)):
            if split > 0 and getattr(self, name) is not None:
                raise PydanticCustomError(
                    "split_twice",
                    "give either {name}_split or {name}:, not both",
                    {"name": name},
                )
        return self

    def source_spec(self) -> SourceSpec:
        """Just the main source's options (what `validation:`/`test:` also hold)."""
        return SourceSpec.model_validate({k: getattr(self, k) for k in SourceSpec.model_fields})
