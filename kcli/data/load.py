"""`load_data`: a DataSpec in, train / validation / test splits out, preprocessed and described.

Reads the sources (sources.py), cuts the fractions (splits.py) or hands a generator to
streams.py, then fits the preprocessing on the train split only and transforms every split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kcli.data.raw import RawData, StreamSource
from kcli.data.sources import read_source
from kcli.data.spec import DataSpec
from kcli.data.splits import Splits, fit_and_transform, split_indices, strata
from kcli.data.streams import load_stream
from kcli.errors import KcliError


def _read_extra(
    spec: DataSpec, base_dir: Path, seed: int, outputs: list[str] | None
) -> dict[str, Any]:
    extra = {}
    for name in ("validation", "test"):
        nested = getattr(spec, name)
        if nested is not None:
            found = read_source(nested, base_dir, seed, ("data", name), outputs=outputs)
            if isinstance(found, dict):
                raise KcliError(
                    f"{nested.source} returns a dict of splits; a {name}: source must give (x, y)",
                    loc=("data", name, "source"),
                )
            extra[name] = found
    return extra


def load_data(
    spec: DataSpec,
    base_dir: Path,
    seed: int,
    outputs: list[str] | None = None,
    string_layers: dict[str, Any] | None = None,
) -> Splits:
    """Read, split, fit preprocessing on train, transform every split, describe the target.

    Relative paths resolve against `base_dir` (the recipe's folder), which is also put on the
    import path of a `python:` source: such a recipe runs the user's code. `outputs` are the
    model's output names (log names): with several, y is keyed by them (kcli.data.several).
    `string_layers` maps each model input read by a StringLookup/TextVectorization layer to
    that layer's planned node (kcli.model.strings.string_inputs): its vocabulary is adapted on
    the train split (kcli.data.text).
    """
    base_dir = Path(base_dir)
    main = read_source(spec.source_spec(), base_dir, seed, ("data",), outputs=outputs)
    extra = _read_extra(spec, base_dir, seed, outputs)
    if isinstance(main, StreamSource):
        if string_layers:
            raise KcliError(
                f"{spec.source} is a generator; string inputs ({', '.join(string_layers)}) come "
                "from a CSV's columns listed under data.strings",
                loc=("data", "source"),
            )
        return load_stream(spec, main, extra)
    parts: dict[str, Any] = dict(main) if isinstance(main, dict) else {"train": main}
    for name in ("validation", "test"):
        if name in parts and (getattr(spec, name) is not None or getattr(spec, f"{name}_split")):
            raise KcliError(
                f"{spec.source} already returns a {name} split; remove {name}: / {name}_split",
                loc=("data", name if getattr(spec, name) is not None else f"{name}_split"),
            )
        if name in extra:
            parts[name] = extra[name]
    train: RawData = parts["train"]
    fractions = {"validation": spec.validation_split, "test": spec.test_split}
    if any(fractions.values()):
        indices = split_indices(len(train), fractions, strata(train.y), seed)
        for name, index in indices.items():
            parts[name] = train.take(index)
            if name != "train":
                parts[name].where = f"{train.where} ({name} split)"
    return fit_and_transform(spec, parts, string_layers, base_dir)
