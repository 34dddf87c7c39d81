"""The sample a `kcli export` artifact is checked on, and the run's own outputs on it.

The sample is up to SAMPLE_SIZE raw samples of the run's data (random ones where the data cannot
be read: standard-normal features, valid ids where an Embedding reads them). `encoded` gives it
as the artifacts take it (float32 arrays, one per model input, the CSV one-hot encoding applied);
`reference_outputs` is the run's own model on it through preprocess.json, which every format's
outputs are compared with.
"""

from __future__ import annotations

from typing import Any

import torch

from kcli.errors import KcliError, Problem

SAMPLE_SIZE = 64


def input_names(run_model: Any) -> list[str]:
    """The model's inputs in the order an artifact takes them (positionally, where unnamed)."""
    return list(run_model.plan.inputs)


def sample_inputs(run_model: Any) -> Any:
    """Up to SAMPLE_SIZE raw samples of the run's data (random ones if it cannot be read)."""
    import numpy as np

    from kcli.data.raw import take
    from kcli.data.sources import load_source_arrays

    recipe = run_model.loaded.recipe
    spec = recipe.data.source_spec()
    try:
        raw = load_source_arrays(spec, run_model.recipe_dir, seed=recipe.seed)
    except KcliError:
        return _random_inputs(run_model)
    return take(raw.x, np.arange(min(len(raw), SAMPLE_SIZE)))


def _random_inputs(run_model: Any) -> Any:
    """Standard-normal raw features; integer ids below input_dim where an Embedding reads them."""
    import numpy as np

    prep = run_model.preprocessing
    rng = np.random.default_rng(0)
    arrays = {}
    for name, shape in prep.raw_shapes.items():
        values = rng.standard_normal((SAMPLE_SIZE, *shape)).astype(np.float32)
        limit = _embedding_limit(run_model, name)
        if limit is not None:
            values = rng.integers(0, limit, (SAMPLE_SIZE, *shape)).astype(np.float32)
        arrays[name] = values
    if prep.table is not None:
        raise KcliError(
            Problem(
                f"cannot read {run_model.run_dir}'s data to check the export against (a CSV run)"
            )
        )
    return arrays if prep.inputs is not None else next(iter(arrays.values()))


def _embedding_limit(run_model: Any, input_name: str) -> int | None:
    names = input_names(run_model)
    model_input = input_name if input_name in names else names[0]
    for node in run_model.plan.nodes:
        if node.spec.type == "Embedding" and list(node.inputs) == [model_input]:
            return node.spec.input_dim
    return None


def encoded(run_model: Any, raw: Any) -> list[Any]:
    """The raw sample as the artifact takes it: float32 arrays in model-input order."""
    from kcli.data.preprocess import Preprocessing

    prep = run_model.preprocessing
    # The same preprocessing without its steps: only the CSV encoding and the shape checks.
    encode = Preprocessing([], [], inputs=prep.inputs, raw_shapes=prep.raw_shapes, table=prep.table)
    arrays = encode.transform_x(raw, "the export sample")
    if isinstance(arrays, dict):
        return [arrays[name] for name in input_names(run_model)]
    return [arrays]


def reference_outputs(run_model: Any, raw: Any) -> list[Any]:
    """The run's own model on the sample, through preprocess.json (numpy)."""
    x = run_model.preprocessing.transform_x(raw, "the export sample")
    if isinstance(x, dict):
        x = {name: torch.from_numpy(values) for name, values in x.items()}
    else:
        x = torch.from_numpy(x)
    with torch.no_grad():
        out = run_model.model.eval()(x)
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
