"""`kcli import`: a Keras 3 `.keras` archive (or `model.to_json()` output) -> a recipe + weights.

The archive's config.json becomes the recipe's `model:` (kcli.use.keras_graph, keras_layers),
its compile_config the `compile:` (kcli.use.keras_compile); its weights (model.weights.h5, read
by kcli.model.keras_archive) are loaded into the model the recipe builds and saved, in kcli's
layout, as `<recipe>.weights.safetensors` beside the recipe. A Keras archive says nothing of
the training data, so the recipe's `data.source` is the `--data` given, or a placeholder that
`kcli validate` and `kcli train` refuse with a message saying what to fill in. Everything is
translated, validated, built and loaded before either file is written (atomically); anything
kcli does not have is exit 2 naming it and its place in the archive.
"""

from __future__ import annotations

import importlib.util
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kcli.errors import KcliError, Problem
from kcli.files import check_output_path, write_bytes_atomic, write_text_atomic
from kcli.use.keras_compile import import_compile
from kcli.use.keras_graph import Located, import_model
from kcli.use.keras_values import ImportRefused, refused

DATA_PLACEHOLDER = "REPLACE ME: the training data (sklearn:NAME, file.npz, ...; see RECIPE.md)"
LOSS_PLACEHOLDER = "REPLACE ME: the loss (the Keras model was saved without compile())"


@dataclass
class KerasSource:
    """What an archive or JSON file holds: the model config, compile config, and weights."""

    path: Path
    config: dict
    compile_config: dict | None
    metadata: dict
    archive: Any = None  # kcli.model.keras_archive.KerasArchive, None for a JSON file


@dataclass
class ImportResult:
    recipe: Path
    weights: Path | None
    n_layers: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": str(self.recipe),
            "weights": None if self.weights is None else str(self.weights),
            "n_layers": self.n_layers,
            "notes": self.notes,
        }


def read_keras_source(path: Path) -> KerasSource:
    """The config (and, from a .keras archive, the weights) of a saved Keras model."""
    path = Path(path)
    if not path.is_file():
        raise KcliError(Problem(f"no such file: {path}"))
    if path.suffix.lower() == ".json":
        config = _json(path, path.read_bytes(), "the file")
        return KerasSource(path, config, config.get("compile_config"), {})
    if path.suffix.lower() in (".h5", ".hdf5"):
        raise KcliError(
            Problem(
                "a legacy HDF5 model file: kcli imports Keras 3 .keras archives (and "
                "model.to_json() files); re-save it with model.save('model.keras')",
                file=str(path),
            )
        )
    if not zipfile.is_zipfile(path):
        raise KcliError(
            Problem(
                "not a .keras archive (a .keras file is a zip of config.json, metadata.json "
                "and model.weights.h5)",
                file=str(path),
            )
        )
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        if "config.json" not in names:
            raise KcliError(Problem("the archive has no config.json", file=str(path)))
        config = _json(path, archive.read("config.json"), "config.json")
        metadata = {}
        if "metadata.json" in names:
            metadata = _json(path, archive.read("metadata.json"), "metadata.json")
        has_weights = "model.weights.h5" in names
    weights = _read_weights(path) if has_weights else None
    return KerasSource(path, config, config.get("compile_config"), metadata, weights)


def _json(path: Path, data: bytes, what: str) -> dict:
    try:
        value = json.load(io.BytesIO(data))
    except (ValueError, UnicodeDecodeError) as error:
        raise KcliError(Problem(f"{what} is not JSON ({error})", file=str(path))) from None
    if not isinstance(value, dict):
        raise KcliError(Problem(f"{what} is not a Keras model config", file=str(path)))
    return value


def _read_weights(path: Path) -> Any:
    from kcli.model.keras_archive import read_keras_archive

    for package in ("h5py", "safetensors"):  # Keras' weights file; the one kcli writes
        if importlib.util.find_spec(package) is None:
            raise KcliError(
                Problem(
                    f"importing a .keras archive needs the '{package}' package: pip install "
                    f"{package}"
                )
            )

    return read_keras_archive(path)


def recipe_from_keras(source: KerasSource, data: str | None) -> dict[str, Any]:
    """The recipe mapping (torch-free); a KcliError names what kcli cannot take, and where."""
    where = str(source.path)
    try:
        model = import_model(source.config)
    except Located as error:
        raise refused(where, error.where, error.what) from None
    compile_section: dict[str, Any] = {}
    if source.compile_config:
        try:
            compile_section = import_compile(source.compile_config)
        except ImportRefused as refusal:
            text = str(refusal)
            place, _, what = text.partition(": ")
            raise refused(where, place, what) from None
    compile_section.setdefault("loss", LOSS_PLACEHOLDER)
    return {
        "data": {"source": data or DATA_PLACEHOLDER},
        "model": model,
        "compile": compile_section,
    }


def check_imported(recipe: dict[str, Any], where: str) -> Any:
    """The recipe validated and its graph planned, as `kcli validate` would (placeholders
    apart): a Recipe, or a KcliError prefixed with what was imported."""
    from kcli.model.graph import plan_graph
    from kcli.recipe.load import validate_all
    from kcli.recipe.schema import Recipe
    from kcli.recipe.source import SourceMap

    trial = json.loads(json.dumps(recipe))
    if trial["data"]["source"] == DATA_PLACEHOLDER:
        trial["data"] = {"source": "sklearn:iris"}  # any valid source: data is not imported
    if trial["compile"]["loss"] == LOSS_PLACEHOLDER:
        trial["compile"]["loss"] = "mse"
    try:
        parsed = validate_all(Recipe, trial, SourceMap(file=where))
        plan_graph(parsed.model)
    except KcliError as error:
        problems = [
            Problem(f"the imported recipe: {p.message}", p.loc, file=where) for p in error.problems
        ]
        raise KcliError(problems) from None
    return parsed


def import_keras(
    path: Path,
    output: Path | None = None,
    data: str | None = None,
) -> ImportResult:
    """`kcli import`: write the recipe (and its weights file) for a saved Keras model."""
    path = Path(path)
    output = Path(output) if output is not None else path.with_suffix(".yaml")
    check_output_path(output)
    source = read_keras_source(path)
    recipe = recipe_from_keras(source, data)
    weights_path = output.with_name(f"{output.stem}.weights.safetensors")
    notes = []
    weights_bytes = None
    if source.archive is not None:
        if _recipe_takes_weights():
            recipe["model"] = {"weights": weights_path.name, **recipe["model"]}
        else:
            notes.append(
                f"this kcli has no model.weights yet: the weights are in {weights_path.name} "
                "but the recipe does not load them"
            )
        parsed = check_imported(recipe, str(path))
        weights_bytes = weights_state(parsed, source)
    else:
        check_imported(recipe, str(path))
        notes.append("architecture only (a JSON config has no weights): no weights file written")
    if recipe["data"]["source"] == DATA_PLACEHOLDER:
        notes.append(f"set data.source in {output} (or import with --data SOURCE) before training")
    if recipe["compile"]["loss"] == LOSS_PLACEHOLDER:
        notes.append(f"the archive has no compile config: set compile.loss in {output}")
    text = _header(source, output, weights_path if weights_bytes else None, data) + _dump(recipe)
    if weights_bytes is not None:
        write_bytes_atomic(weights_path, weights_bytes)
    write_text_atomic(output, text)
    return ImportResult(
        output,
        weights_path if weights_bytes else None,
        len(recipe["model"]["layers"]),
        notes,
    )


def _recipe_takes_weights() -> bool:
    from kcli.model.spec import ModelSpec

    return "weights" in ModelSpec.model_fields


def weights_state(parsed: Any, source: KerasSource) -> bytes:
    """Keras' weights loaded into the recipe's model, as kcli's safetensors state dict."""
    from safetensors.torch import save

    from kcli.model.build import build_model_from_spec
    from kcli.model.keras_weights import load_keras_weights

    spec = parsed.model
    if "weights" in type(spec).model_fields:
        spec = spec.model_copy(update={"weights": None})  # the file is being made from these
    built = build_model_from_spec(spec, parsed.seed)
    try:
        load_keras_weights(built.model, source.archive.weights, strict=True)
    except KcliError as error:
        raise KcliError(
            [
                Problem(f"model.weights.h5: {p.message}", file=str(source.path))
                for p in error.problems
            ]
        ) from None
    state = {k: v.detach().contiguous() for k, v in built.model.state_dict().items()}
    return save(state, metadata={"format": "pt", "kcli.imported_from": source.path.name})


def _header(source: KerasSource, output: Path, weights: Path | None, data: str | None) -> str:
    version = source.metadata.get("keras_version")
    saved = source.metadata.get("date_saved")
    made = f" (Keras {version}{f', saved {saved}' if saved else ''})" if version else ""
    lines = [
        f"# Imported by `kcli import` from {source.path.name}{made}.",
        "# model: the Keras model's layers and arguments (those equal to Keras' defaults left out)",
        f"# weights: {weights.name} (Keras' trained weights in kcli's layout)"
        if weights
        else "# weights: none (architecture only)",
        "# compile: the archive's compile config" if source.compile_config else "",
        ""
        if data
        else "# data: a Keras archive does not say what it was trained on: set data.source",
        f"# then: kcli validate {output.name} && kcli train {output.name}",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def _dump(recipe: dict[str, Any]) -> str:
    return yaml.safe_dump(recipe, sort_keys=False, default_flow_style=None, width=100)
