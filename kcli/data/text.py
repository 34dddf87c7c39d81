"""String inputs: the CSV columns under `data.strings`, turned into the ids the model takes.

Each such column feeds a model input of its own, read by one StringLookup or TextVectorization
layer (kcli.model.strings checks the wiring). The layer's vocabulary is adapted on the train
split only (or is the one the layer gives) and kept, with any tf-idf weights, in the run's
preprocess.json: `fit_strings` makes that state, `encode_strings` turns the strings of any
split, or of new data for eval/predict, into int64 ids with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kcli.errors import KcliError, Loc, Problem
from kcli.model.layers import layer_registry
from kcli.model.vocabulary import OutOfVocabulary

STRING_SHAPE = (1,)  # per sample: one string, as keras.Input(shape=(1,), dtype="string")


def match_columns(columns: list[str], layers: dict[str, Any], n_features: int) -> dict[str, Any]:
    """String column -> the planned node of the layer reading it (by the model input's name;
    a model whose one input is one string column may call that input anything)."""
    if len(columns) == 1 and len(layers) == 1 and not n_features and columns[0] not in layers:
        return {columns[0]: next(iter(layers.values()))}
    problems = [
        Problem(
            f"data.strings lists '{c}', but no StringLookup or TextVectorization layer reads a "
            f"model input '{c}' (string layers read: {', '.join(sorted(layers)) or 'none'})",
            ("data", "strings"),
        )
        for c in columns
        if c not in layers
    ]
    problems += [
        Problem(
            f"the model's input '{name}' feeds {node.type} '{node.name}', which reads strings: "
            f"list a CSV column '{name}' under data.strings",
            ("data", "strings") if columns else ("data", "source"),
        )
        for name, node in layers.items()
        if name not in columns
    ]
    if problems:
        raise KcliError(problems)
    return {c: layers[c] for c in columns}


def _given_tokens(spec: Any, base_dir: Path, loc: Loc) -> list[str]:
    """The layer's own vocabulary: its list, or its file's lines (relative to the recipe)."""
    if isinstance(spec.vocabulary, list):
        return list(spec.vocabulary)
    path = Path(spec.vocabulary)
    path = path if path.is_absolute() else base_dir / path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise KcliError(f"cannot read the vocabulary file {path}: {error}", loc=loc) from None
    lines = text.splitlines()
    while lines and lines[-1] == "":  # a final newline ends the last token, adds none
        lines.pop()
    return lines


def fit_strings(
    x: dict[str, Any], layers: dict[str, Any], base_dir: Path, where: str
) -> dict[str, dict[str, Any]]:
    """Input (column) -> {layer, spec, vocabulary, idf_weights}, fitted on these (train) strings."""
    state = {}
    for column, node in layers.items():
        spec = node.spec
        if spec.vocabulary is None:
            vocabulary, idf = spec.adapt(_texts(x[column]))
            if len(vocabulary) == len(spec.specials()):
                raise KcliError(
                    f"{node.type} '{node.name}' learned no tokens from column '{column}' of "
                    f"{where}: every sample is empty after its standardize and split",
                    loc=node.loc,
                )
        else:
            loc = (*node.loc, "vocabulary")
            try:
                vocabulary, idf = spec.vocabulary_from(_given_tokens(spec, base_dir, loc))
            except ValueError as error:
                raise KcliError(str(error), loc=loc) from None
            depth = spec.depth() if spec.output_mode != "int" else None
            if depth is not None and len(vocabulary) > depth:
                raise KcliError(
                    f"the vocabulary has {len(vocabulary)} tokens, more than the output's "
                    f"{depth} (max_tokens)",
                    loc=loc,
                )
        state[column] = {
            "layer": node.name,
            "spec": spec.model_dump(mode="json", exclude={"name", "inputs"}),
            "vocabulary": vocabulary,
            "idf_weights": idf,
        }
    return state


def encode_strings(
    state: dict[str, dict[str, Any]], x: Any, where: str, loc: Loc, row_label: Any
) -> dict[str, np.ndarray]:
    """Input name -> int64 ids of its strings, with the fitted vocabularies."""
    out = {}
    for column, entry in state.items():
        if not isinstance(x, dict) or column not in x:
            raise KcliError(f"{where} has no string column '{column}'", loc=loc)
        spec = layer_registry.validate_spec(entry["spec"])
        try:
            out[column] = spec.encode(_texts(x[column]), entry["vocabulary"])
        except OutOfVocabulary as error:
            raise KcliError(
                f"{where} {row_label(error.sample)} column '{column}': '{error.token}' is not in "
                f"the vocabulary of {entry['layer']}, which has no OOV index (num_oov_indices 0)",
                loc=loc,
            ) from None
    return out


def idf_weights_by_layer(state: dict[str, dict[str, Any]] | None) -> dict[str, list[float]]:
    """Layer name -> its tf-idf weights (the layers in tf_idf mode)."""
    return {
        entry["layer"]: entry["idf_weights"]
        for entry in (state or {}).values()
        if entry["idf_weights"] is not None
    }


def install_idf_weights(model: Any, state: dict[str, dict[str, Any]] | None) -> None:
    """Put the fitted tf-idf weights into the model's string layers (kept out of its weights)."""
    weights = idf_weights_by_layer(state)
    if not weights:
        return
    for name, module in model.named_modules():
        layer = name.rpartition(".")[2]
        if layer in weights and hasattr(module, "set_idf_weights"):
            module.set_idf_weights(weights[layer])


def check_id_ranges(plan: Any, state: dict[str, dict[str, Any]] | None) -> None:
    """An Embedding reading a string layer's int ids must have room for the whole vocabulary
    (an id past input_dim would stop training with an index error)."""
    sizes = {
        entry["layer"]: len(entry["vocabulary"])
        for entry in (state or {}).values()
        if entry["spec"]["output_mode"] == "int"
    }
    problems = []
    for node in plan.nodes:
        for source in node.inputs:
            size = sizes.get(source)
            limit = getattr(node.spec, "input_dim", None)
            if node.type == "Embedding" and size is not None and limit < size:
                problems.append(
                    Problem(
                        f"Embedding '{node.name}' has input_dim {limit}, but '{source}' gives "
                        f"ids up to {size - 1} (a vocabulary of {size}, padding and OOV "
                        f"included): make input_dim at least {size}, or cap max_tokens",
                        (*node.loc, "input_dim"),
                    )
                )
    if problems:
        raise KcliError(problems)


def _texts(values: Any) -> list[str]:
    array = np.asarray(values, dtype=object).reshape(len(values), -1)
    return ["" if v is None else str(v) for v in array[:, 0]]
