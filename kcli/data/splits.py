"""Splitting and fitting: raw data in, train / validation / test splits out, preprocessed.

Splits by fraction are random and seeded, and stratified for class targets: each class is
shuffled and cut in the same proportions, so every split keeps the class balance (Keras instead
takes the last rows of the arrays, unshuffled). A split holds round(fraction * n) samples; the
test split is cut first, then validation, and the train split keeps the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kcli.data.preprocess import SINGLE_INPUT, Preprocessing
from kcli.data.raw import RawData, StreamSource, n_samples
from kcli.data.several import targets_from_result, weights_from_result
from kcli.data.spec import DataSpec
from kcli.data.targets import (
    TargetInfo,
    count_classes,
    describe_target,
    encode_y,
    fit_class_names,
    is_label_strings,
)
from kcli.errors import KcliError, Loc

SPLITS = ("train", "validation", "test")
FIT_BATCHES = 100  # a generator's preprocessing is fitted on at most this many batches


@dataclass
class ArraySplit:
    """One split in memory: x (array, or dict by input name), y, optional sample weights."""

    x: Any
    y: Any  # an array, a mapping output name -> array (several outputs), or None
    sample_weight: Any = None  # an array, or a mapping output name -> array

    def __len__(self) -> int:
        return n_samples(self.x)


class StreamSplit:
    """A python generator source, preprocessed batch by batch.

    Without `steps_per_epoch`, each epoch calls the user's function again and runs its iterable
    to the end. With it, one iterator carries on across epochs (so an endless generator keeps
    going, as in Keras) and is re-created by calling the function again when it runs out.
    """

    def __init__(self, source: StreamSource, preprocessing: Preprocessing) -> None:
        self.source = source
        self.preprocessing = preprocessing
        self.steps_per_epoch = source.steps_per_epoch
        self._iterator: Iterator[Any] | None = None

    def epoch(self, n_batches: int | None = None) -> Iterator[tuple[Any, Any, Any]]:
        """The next epoch's (x, y, sample_weight) numpy batches; `n_batches` overrides the count."""
        n_batches = n_batches if n_batches is not None else self.steps_per_epoch
        if n_batches is None:
            for number, batch in enumerate(self.source.open()):
                yield self._prepare(batch, number)
            return
        for number in range(n_batches):
            batch = next(self._iterator, None) if self._iterator is not None else None
            if batch is None:
                self._iterator = self.source.open()
                batch = next(self._iterator, None)
                if batch is None:
                    raise KcliError(
                        f"{self.source.where} yielded no batches", loc=(*self.source.loc, "source")
                    )
            yield self._prepare(batch, number)

    def _prepare(self, batch: Any, number: int) -> tuple[Any, Any, Any]:
        x, y, weight = unpack_batch(batch, self.source, number)
        where = f"{self.source.where} batch {number}"
        prep = self.preprocessing
        return prep.transform_x(x, where, self.source.loc), prep.transform_y(y, where), weight


@dataclass
class Splits:
    """What the trainer gets: the splits, the fitted preprocessing and the target's facts."""

    train: ArraySplit | StreamSplit
    validation: ArraySplit | StreamSplit | None
    test: ArraySplit | StreamSplit | None
    preprocessing: Preprocessing
    target: TargetInfo | None  # None when the model has several outputs: see `targets`
    input_shapes: dict[str, tuple[int, ...]]  # per sample, after preprocessing; "input" if one
    targets: dict[str, TargetInfo] | None = None  # several outputs: each output's target

    def target_of(self, output: str | None) -> TargetInfo:
        """The target of output `output` (its log name; None for a model of one output)."""
        return self.target if output is None or self.targets is None else self.targets[output]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The per-sample x shape of a single-input data set."""
        if set(self.input_shapes) != {SINGLE_INPUT}:
            raise KcliError(f"the data has several inputs: {sorted(self.input_shapes)}")
        return self.input_shapes[SINGLE_INPUT]


def unpack_batch(batch: Any, source: StreamSource, number: int) -> tuple[Any, Any, Any]:
    """A generator's batch -> (x, y, sample_weight) as numpy arrays."""
    if not isinstance(batch, tuple | list) or len(batch) not in (2, 3):
        raise KcliError(
            f"{source.where} batch {number} is {type(batch).__name__}; expected (x, y) or "
            "(x, y, sample_weight)",
            loc=(*source.loc, "source"),
        )
    x, y, *rest = batch
    x = {k: np.asarray(v) for k, v in x.items()} if isinstance(x, dict) else np.asarray(x)
    where = f"{source.where} batch {number}"
    outputs = source.outputs
    weight = weights_from_result(rest[0] if rest else None, outputs, where, (*source.loc, "source"))
    return x, targets_from_result(y, outputs, where, (*source.loc, "source")), weight


def strata(y: np.ndarray | None) -> np.ndarray | None:
    """Class codes to stratify by, or None when y is not a class target.

    Targets of several outputs are not stratified (no one output's classes to keep balanced)."""
    if y is None or isinstance(y, dict):
        return None
    flat = y.reshape(len(y), -1)
    if is_label_strings(y) or y.dtype.kind in "biu":
        if flat.shape[1] != 1:
            return None
        return np.unique(
            flat[:, 0].astype(str) if is_label_strings(y) else flat[:, 0], return_inverse=True
        )[1]
    if y.dtype.kind == "f" and np.isin(flat, (0.0, 1.0)).all():
        if flat.shape[1] == 1:
            return flat[:, 0].astype(np.int64)
        if np.all(flat.sum(axis=1) == 1):
            return flat.argmax(axis=1)
    return None


def split_indices(
    n: int, fractions: dict[str, float], codes: np.ndarray | None, seed: int, loc: Loc = ("data",)
) -> dict[str, np.ndarray]:
    """Sorted sample indices of each split ('train' and those with a fraction > 0)."""
    sizes = {name: math.floor(f * n + 0.5) for name, f in fractions.items() if f > 0}
    for name, size in sizes.items():
        if size == 0:
            raise KcliError(
                f"{name}_split {fractions[name]} of {n} samples leaves the {name} split empty "
                f"({fractions[name]} * {n} rounds to 0); use a larger fraction",
                loc=(*loc, f"{name}_split"),
            )
    if n - sum(sizes.values()) <= 0:
        raise KcliError(
            f"validation_split + test_split leave no training samples out of {n}",
            loc=(*loc, "validation_split"),
        )
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 7])
    order = [s for s in ("test", "validation") if s in sizes]
    if codes is None:
        groups = [rng.permutation(n)]
        quotas = [{s: sizes[s] for s in order}]
    else:
        groups = [rng.permutation(np.flatnonzero(codes == c)) for c in np.unique(codes)]
        quotas = _stratified_quotas([len(g) for g in groups], sizes, order)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in ("train", *order)}
    for members, quota in zip(groups, quotas, strict=True):
        start = 0
        for split in order:
            parts[split].append(members[start : start + quota[split]])
            start += quota[split]
        parts["train"].append(members[start:])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def _stratified_quotas(
    counts: list[int], sizes: dict[str, int], order: list[str]
) -> list[dict[str, int]]:
    """Per class, how many samples go to each split: proportional, summing to each size.

    Largest remainders get the extra samples, never taking a class's last free sample.
    """
    n = sum(counts)
    room = list(counts)
    quotas: list[dict[str, int]] = [{} for _ in counts]
    for split in order:
        exact = [sizes[split] * c / n for c in counts]
        for i, value in enumerate(exact):
            quotas[i][split] = min(math.floor(value), room[i])
            room[i] -= quotas[i][split]
        left = sizes[split] - sum(q[split] for q in quotas)
        by_remainder = sorted(range(len(counts)), key=lambda i: exact[i] - math.floor(exact[i]))
        while left > 0:
            for i in reversed(by_remainder):
                if left and room[i] > 0:
                    quotas[i][split] += 1
                    room[i] -= 1
                    left -= 1
    return quotas


def _target_loc(raw: RawData) -> Loc:
    if raw.columns is not None:
        return (*raw.loc, "target")
    return (*raw.loc, "y") if raw.where.endswith((".npz", ".npy")) else (*raw.loc, "source")


def fit_strings_of(train: RawData, layers: dict[str, Any] | None, base_dir: Path) -> Any:
    """The string columns' vocabularies, adapted on the train split (None: no string input)."""
    if not train.strings and not layers:
        return None
    from kcli.data.text import fit_strings, match_columns

    matched = match_columns(train.strings, layers or {}, len(train.columns or []))
    return fit_strings(train.x, matched, base_dir, train.where)


def fit_and_transform(
    spec: DataSpec,
    parts: dict[str, Any],
    string_layers: dict[str, Any] | None = None,
    base_dir: Path = Path(),
) -> Splits:
    """Fit the preprocessing on parts['train'] and apply it to every array split.

    `string_layers`: model input -> the planned StringLookup/TextVectorization node reading it
    (kcli.model.strings); their vocabularies are adapted here, on the train split."""
    train: RawData = parts["train"]
    strings = fit_strings_of(train, string_layers, base_dir)
    if isinstance(train.y, dict):
        return _fit_several(spec, parts, strings)
    class_names = fit_class_names(train.y, train.class_names)
    ys = {}
    for name, raw in parts.items():
        if isinstance(raw, RawData):
            if raw.y is None:
                raise KcliError(f"{raw.where} has no y", loc=_target_loc(raw))
            ys[name] = encode_y(raw.y, class_names, raw.where, _target_loc(raw), raw.row_label)
    n_classes = count_classes(list(ys.values()), class_names)
    prep = Preprocessing.fit(
        spec.preprocess,
        train.x,
        ys["train"],
        columns=train.columns,
        categorical=train.categorical,
        class_names=class_names,
        n_classes=n_classes,
        where=train.where,
        row_label=train.row_label,
        strings=strings,
    )
    out: dict[str, Any] = {}
    for name, raw in parts.items():
        if not isinstance(raw, RawData):
            out[name] = StreamSplit(raw, prep)  # validation/test from a generator
            continue
        x = prep.transform_x(raw.x, raw.where, raw.loc, raw.row_label)
        y = prep.transform_y(raw.y, raw.where, _target_loc(raw), raw.row_label)
        out[name] = ArraySplit(x, y, raw.sample_weight)
    finals = [out[n].y for n in SPLITS if isinstance(out.get(n), ArraySplit)]
    prep.target = describe_target(finals, class_names, n_classes, _target_loc(train))
    return Splits(
        out["train"],
        out.get("validation"),
        out.get("test"),
        prep,
        prep.target,
        prep.output_shapes(),
    )


def _fit_several(spec: DataSpec, parts: dict[str, Any], strings: Any = None) -> Splits:
    """fit_and_transform for a model of several outputs: y keyed by output, each output's class
    names fitted on its train targets and its target described on its own."""
    train: RawData = parts["train"]
    outputs = list(train.y)
    for index, step in enumerate(spec.preprocess):
        if step.target:
            raise KcliError(
                f"{step.type} makes one target, but the model has {len(outputs)} outputs "
                f"({', '.join(outputs)}): give class indices with sparse_categorical_"
                "crossentropy, or one-hot targets in the data",
                loc=("data", "preprocess", index),
            )
    class_names = {name: fit_class_names(train.y[name], None) for name in outputs}
    prep = Preprocessing.fit(
        spec.preprocess,
        train.x,
        None,
        columns=train.columns,
        categorical=train.categorical,
        where=train.where,
        row_label=train.row_label,
        strings=strings,
    )
    prep.output_class_names = class_names
    out: dict[str, Any] = {}
    for name, raw in parts.items():
        if not isinstance(raw, RawData):
            out[name] = StreamSplit(raw, prep)
            continue
        if raw.y is None:
            raise KcliError(f"{raw.where} has no y", loc=_target_loc(raw))
        x = prep.transform_x(raw.x, raw.where, raw.loc, raw.row_label)
        y = prep.transform_y(raw.y, raw.where, _target_loc(raw), raw.row_label)
        out[name] = ArraySplit(x, y, raw.sample_weight)
    finals = [out[n].y for n in SPLITS if isinstance(out.get(n), ArraySplit)]
    targets = {}
    for output in outputs:
        ys = [final[output] for final in finals]
        n_classes = count_classes(ys, class_names[output])
        loc = (
            (*_target_loc(train), output)
            if isinstance(spec.y or spec.target, dict)
            else (_target_loc(train))
        )
        targets[output] = describe_target(ys, class_names[output], n_classes, loc)
    prep.targets = targets
    return Splits(
        out["train"],
        out.get("validation"),
        out.get("test"),
        prep,
        None,
        prep.output_shapes(),
        targets,
    )
