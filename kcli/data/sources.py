"""Reading raw (x, y) from every kind of source: files, scikit-learn, synthetic, python.

Nothing here fits or transforms: a source gives `RawData` (arrays as found, CSV columns as
parsed), a `StreamSource` (a python generator of batches) or, for a python function returning
a dict of splits, one `RawData` per split. Every bad input raises a KcliError located at the
recipe key that named it, with the file and what was expected.
"""

from __future__ import annotations

import importlib
import inspect
import math
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kcli.data.csvfile import read_csv
from kcli.data.raw import RawData, StreamSource, check_lengths, is_batch_iterable
from kcli.data.several import (
    by_output,
    several,
    single_or_mapping,
    targets_from_result,
    weight_names,
    weights_from_result,
)
from kcli.data.spec import SourceSpec, source_kind
from kcli.data.synthetic import SYNTHETIC_PARAMS
from kcli.data.user_code import run_user_code, user_traceback
from kcli.errors import KcliError, Loc
from kcli.limits import check_memory

SPLIT_NAMES = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}


def read_source(
    spec: SourceSpec,
    base_dir: Path,
    seed: int,
    loc: Loc = ("data",),
    *,
    require_y: bool = True,
    outputs: list[str] | None = None,
) -> RawData | StreamSource | dict[str, RawData]:
    """Read one source. A python source may give a stream or a dict of splits. With several
    model `outputs` (their log names), y is a mapping output -> array (kcli.data.several)."""
    if several(outputs) and source_kind(spec.source)[0] in ("sklearn", "synthetic"):
        raise KcliError(
            f"{spec.source} gives one target, but the model has {len(outputs)} outputs "
            f"({', '.join(outputs)}); give their targets with a file or a python: source",
            loc=(*loc, "source"),
        )
    kind, name = source_kind(spec.source)
    if kind == "sklearn":
        return check_lengths(_read_sklearn(name, loc))
    if kind == "synthetic":
        params = SYNTHETIC_PARAMS[name].model_validate(spec.params)
        values = params.n_samples * math.prod(params.sample_shape)
        # Generated as float64 with a noise array of the same size, then cast: ~28 bytes a value.
        check_memory(28 * values, f"{spec.source} with {values:,} values", loc=(*loc, "params"))
        # One stream of numbers per source (train / validation / test), all from the seed.
        tag = {"validation": 1, "test": 2}.get(str(loc[-1]), 0)
        x, y = params.generate(np.random.default_rng([seed & 0xFFFFFFFF, tag]))
        return check_lengths(RawData(x, y, where=spec.source, loc=loc))
    if kind == "python":
        return _read_python(spec, name, base_dir, seed, loc, outputs)
    path = resolve_path(spec.source, base_dir, (*loc, "source"))
    if kind == "npz":
        return check_lengths(_read_npz(spec, path, loc, require_y, outputs))
    if kind == "npy":
        x = _load_npy(path, (*loc, "source"))
        y = None
        if spec.y is not None:
            paths = by_output(spec.y, outputs, (*loc, "y"), "target") or {"": spec.y}
            y = single_or_mapping(
                {
                    output: _load_npy(resolve_path(p, base_dir, (*loc, "y")), (*loc, "y"))
                    for output, p in paths.items()
                }
            )
        elif require_y:
            raise KcliError("a .npy source needs 'y' (the labels' .npy file)", loc=(*loc, "y"))
        names = weight_names(spec.sample_weight, outputs, (*loc, "sample_weight"))
        weights = single_or_mapping(
            {
                output: _load_npy(
                    resolve_path(p, base_dir, (*loc, "sample_weight")), (*loc, "sample_weight")
                ).astype(np.float32)
                for output, p in names.items()
            }
        )
        return check_lengths(RawData(x, y, where=str(path), loc=loc, sample_weight=weights))

    return check_lengths(read_csv(spec, path, loc, require_y, outputs))


def load_source_arrays(
    spec: SourceSpec,
    base_dir: Path,
    *,
    seed: int = 0,
    loc: Loc = ("data",),
    require_y: bool = True,
    outputs: list[str] | None = None,
) -> RawData:
    """Raw (x, y) of a source that gives arrays, for `eval`/`predict` on other data.

    Feed `raw.x` and `raw.y` to the run's `Preprocessing.transform_x` / `transform_y`.
    """
    raw = read_source(spec, base_dir, seed, loc, require_y=require_y, outputs=outputs)
    if not isinstance(raw, RawData):
        what = "a dict of splits" if isinstance(raw, dict) else "a stream of batches"
        raise KcliError(
            f"{spec.source} gives {what}; here it must give one (x, y)", loc=(*loc, "source")
        )
    return raw


def resolve_path(text: str, base_dir: Path, loc: Loc) -> Path:
    """A path from the recipe, relative to the recipe's folder; it must exist."""
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path
    if not path.is_file():
        where = "" if Path(text).is_absolute() else f" (relative to the recipe folder {base_dir})"
        raise KcliError(f"file not found: {path}{where}", loc=loc)
    return path


def _load_npy(path: Path, loc: Loc) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise KcliError(f"cannot read {path} as a NumPy .npy file: {err}", loc=loc) from None


def _read_npz(
    spec: SourceSpec, path: Path, loc: Loc, require_y: bool, outputs: list[str] | None
) -> RawData:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise KcliError(f"{path} is a .npy array, not a .npz archive", loc=(*loc, "source"))
            names = list(archive.files)

            def array(name: str, key: Loc | str) -> np.ndarray:
                if name not in names:
                    raise KcliError(
                        f"{path} has no array '{name}' (it has: {', '.join(names) or 'none'})",
                        loc=(*loc, *((key,) if isinstance(key, str) else key)),
                    )
                return archive[name]

            x_names = spec.x if spec.x is not None else "x"
            if isinstance(x_names, dict):
                x = {inp: array(arr, "x") for inp, arr in x_names.items()}
            else:
                x = array(x_names, "x")
            y_names = by_output(spec.y, outputs, (*loc, "y"), "target")
            if y_names is None and several(outputs):
                by_output("y", outputs, (*loc, "y"), "target")  # says one is needed per output
            y_names = y_names or {"": spec.y or "y"}
            place = (lambda o: ("y", o)) if isinstance(spec.y, dict) else (lambda o: "y")
            y = single_or_mapping(
                {
                    output: array(name, place(output))
                    for output, name in y_names.items()
                    if require_y or name in names
                }
            )
            w_names = weight_names(spec.sample_weight, outputs, (*loc, "sample_weight"))
            weights = single_or_mapping(
                {o: array(n, "sample_weight").astype(np.float32) for o, n in w_names.items()}
            )
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise KcliError(
            f"cannot read {path} as a NumPy .npz archive: {err}", loc=(*loc, "source")
        ) from None
    return RawData(x, y, where=str(path), loc=loc, sample_weight=weights)


def _read_sklearn(name: str, loc: Loc) -> RawData:
    # Imported here: scikit-learn is slow to import and only these sources need it.
    from sklearn import datasets

    loaders = {
        "iris": datasets.load_iris,
        "digits": datasets.load_digits,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
        "diabetes": datasets.load_diabetes,
    }
    bunch = loaders[name]()
    x = np.asarray(bunch.data, dtype=np.float32)
    if name == "diabetes":
        return RawData(x, np.asarray(bunch.target, np.float32), where=f"sklearn:{name}", loc=loc)
    names = [str(n) for n in bunch.target_names]
    y = np.asarray(bunch.target, np.int64)
    return RawData(x, y, where=f"sklearn:{name}", loc=loc, class_names=names)


def import_function(target: str, base_dir: Path, loc: Loc) -> Callable[..., Any]:
    """`package.module:function`, imported with the recipe's folder on the import path.

    This runs the user's code: a `python:` source is a recipe that executes Python. The recipe
    folder is put first on sys.path (and left there, so the module's own lazy imports work).
    """
    module_name, _, function_name = target.rpartition(":")
    folder = str(Path(base_dir).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # any failure in user code at import (sys.exit too): report it
        raise KcliError(
            f"cannot import '{module_name}' (recipe folder {folder} is on the import path): "
            f"{type(err).__name__}: {err}",
            loc=loc,
            details=user_traceback(err),
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        public = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise KcliError(
            f"module '{module_name}' has no function '{function_name}' "
            f"(it has: {', '.join(sorted(public)) or 'none'})",
            loc=loc,
        )
    return function


def _read_python(
    spec: SourceSpec, target: str, base_dir: Path, seed: int, loc: Loc, outputs: list[str] | None
) -> RawData | StreamSource | dict[str, RawData]:
    source_loc = (*loc, "source")
    function = import_function(target, base_dir, source_loc)
    kwargs = dict(spec.params)
    signature = inspect.signature(function)
    if "seed" in signature.parameters and "seed" not in kwargs:
        kwargs["seed"] = seed  # a loader that takes `seed` gets the recipe's
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        raise KcliError(
            f"{target} cannot take params {sorted(spec.params)}: {err}", loc=(*loc, "params")
        ) from None

    def call() -> Any:  # the user's function failed: say where, with the user's traceback
        return run_user_code(lambda: function(**kwargs), target, source_loc)

    result = call()
    where = f"python:{target}"
    if isinstance(result, dict):
        unknown = [k for k in result if k not in SPLIT_NAMES]
        if unknown or "train" not in result:
            raise KcliError(
                f"{where} returned a dict with keys {sorted(map(str, result))}; a dict of splits "
                "needs 'train' and may have 'validation' (or 'val') and 'test'",
                loc=source_loc,
            )
        return {
            SPLIT_NAMES[k]: check_lengths(_arrays_from_result(v, f"{where} ['{k}']", loc, outputs))
            for k, v in result.items()
        }
    if _is_arrays(result):
        return check_lengths(_arrays_from_result(result, where, loc, outputs))
    if is_batch_iterable(result):
        return StreamSource(call, result, where, loc, spec.steps_per_epoch, outputs)
    raise KcliError(
        f"{where} returned {type(result).__name__}; expected (x, y), (x, y, sample_weight), "
        "a dict of splits {train: (x, y), ...}, or an iterable of (x, y) batches",
        loc=source_loc,
    )


def _is_arrays(value: Any) -> bool:
    """(x, y) or (x, y, w): a tuple, or a short list of array-likes (not a list of batches)."""
    if isinstance(value, tuple):
        return True
    return (
        isinstance(value, list)
        and len(value) in (2, 3)
        and not any(isinstance(v, tuple | list) for v in value)
    )


def _arrays_from_result(
    value: Any, where: str, loc: Loc, outputs: list[str] | None = None
) -> RawData:
    if not _is_arrays(value) or len(value) not in (2, 3):
        raise KcliError(
            f"{where} returned {type(value).__name__}; expected (x, y) or (x, y, sample_weight)",
            loc=(*loc, "source"),
        )
    x, y, *rest = value
    x = {k: np.asarray(v) for k, v in x.items()} if isinstance(x, dict) else np.asarray(x)
    source_loc = (*loc, "source")
    weight = weights_from_result(rest[0] if rest else None, outputs, where, source_loc)
    y = targets_from_result(y, outputs, where, source_loc)
    return RawData(x, y, where=where, loc=loc, sample_weight=weight)
