"""Adapted layers against Keras 3: Normalization.adapt, and Discretization's quantiles.

keras.layers.Normalization.adapt runs on the torch backend without TensorFlow for NumPy arrays:
kcli adapts the same data (in several batches, combined as one population) and both must hold
the same mean, variance and count weights, count the same parameters and give the same outputs.
Keras' Discretization.adapt needs TensorFlow, so its boundaries are computed by calling Keras'
own module-level functions as its update_state and finalize_state do (summarize each batch,
merge_summaries into the running summary, get_bin_boundaries), batch for batch as kcli reads
them; Keras' Discretization made with those boundaries must then bucket as kcli's does.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

keras = pytest.importorskip("keras")  # the conftest chose the torch backend before this import
if keras.backend.backend() != "torch":  # pragma: no cover - someone exported another backend
    pytest.skip("the parity tests need Keras' torch backend", allow_module_level=True)

from keras.src.layers.preprocessing import discretization as keras_discretization  # noqa: E402

from kcli.model.layers import layer_registry  # noqa: E402
from kcli.model.nn.counting import count_weights  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6


def _data(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.1, 10.0, size=shape[1:])
    return (rng.normal(size=shape) * scale + rng.normal(size=shape[1:]) * 5).astype(np.float32)


def _kcli_adapted(spec: dict, x: np.ndarray, batch: int) -> torch.nn.Module:
    module = layer_registry.validate_spec(spec).build([x.shape[1:]])
    module.reset_state()
    for start in range(0, len(x), batch):
        module.update_state(torch.from_numpy(x[start : start + batch]))
    module.finalize_state()
    return module


NORMALIZATION_CASES = [
    ("axis-last", {}, (50, 4)),
    ("axis-last-rank3", {"axis": -1}, (40, 3, 4)),
    ("axis-1-2", {"axis": [1, 2]}, (30, 3, 4, 2)),
    ("axis-none", {"axis": None}, (40, 5)),
    ("axis-1", {"axis": 1}, (40, 3, 4)),
    ("invert", {"invert": True}, (50, 4)),
    ("invert-axis-none", {"axis": None, "invert": True}, (40, 3)),
]


@pytest.mark.parametrize(("id", "args", "shape"), NORMALIZATION_CASES, ids=lambda v: str(v))
def test_normalization_adapt_matches_keras(id, args, shape):
    x = _data(shape, seed=len(id))
    ours = _kcli_adapted({"type": "Normalization", **args}, x, batch=16)
    theirs = keras.layers.Normalization(**args)
    theirs.adapt(x)
    assert [w.name for w in theirs.weights] == ["mean", "variance", "count"]
    for name, weight in zip(("mean", "variance", "count"), theirs.weights, strict=True):
        torch.testing.assert_close(
            getattr(ours, name), torch.as_tensor(weight.numpy()), rtol=RTOL, atol=ATOL
        )
    assert sum(count_weights(ours)) == theirs.count_params()
    probe = torch.from_numpy(_data(shape, seed=99)[:5])
    torch.testing.assert_close(ours(probe), theirs(probe).cpu(), rtol=RTOL, atol=ATOL)


GIVEN_CASES = [
    ("scalar", {"mean": 3.0, "variance": 2.0}, (4,)),
    ("per-feature", {"mean": [1.0, -2.0, 0.5], "variance": [4.0, 0.25, 1e-20]}, (3,)),
    ("broadcast-from-right", {"axis": [1, 2], "mean": [1.0, 2.0], "variance": [2.0, 3.0]}, (3, 2)),
    (
        "two-axes",
        {"axis": [1, 2], "mean": [[1.0], [2.0], [3.0]], "variance": [[1.0], [4.0], [9.0]]},
        (3, 2),
    ),
    ("invert", {"mean": [1.0, 2.0], "variance": [4.0, 9.0], "invert": True}, (2,)),
]


@pytest.mark.parametrize(("id", "args", "shape"), GIVEN_CASES, ids=lambda v: str(v))
def test_given_statistics_match_keras(id, args, shape):
    spec = layer_registry.validate_spec({"type": "Normalization", **args})
    ours = spec.build([shape])
    theirs = keras.layers.Normalization(**args)
    x = torch.from_numpy(_data((6, *shape), seed=len(id)))
    torch.testing.assert_close(ours(x), theirs(x).cpu(), rtol=RTOL, atol=ATOL)
    assert sum(count_weights(ours)) == theirs.count_params() == 0


def _keras_boundaries(x: np.ndarray, num_bins: int, epsilon: float, batch: int) -> list[float]:
    """What Keras' Discretization.adapt learns from these batches (its update/finalize)."""
    summary = np.array([[], []], dtype="float32")  # Keras' reset_state
    for start in range(0, len(x), batch):
        values = np.array(x[start : start + batch]).astype("float32")
        new = keras_discretization.summarize(values, epsilon)
        summary = keras_discretization.merge_summaries(new, summary, epsilon)
    return keras_discretization.get_bin_boundaries(summary, num_bins).tolist()


@pytest.mark.parametrize(
    ("num_bins", "epsilon", "shape", "batch"),
    [
        (4, 0.01, (1000, 1), 1000),  # one batch
        (4, 0.01, (1000, 3), 128),  # merged and resampled summaries
        (10, 0.05, (777, 2), 100),
        (49, 0.01, (3000,), 256),  # Keras makes 50 bins of num_bins 49 (NumPy's arange)
        (3, 0.3, (500, 2, 2), 64),
    ],
)
def test_discretization_boundaries_match_keras_quantiles(num_bins, epsilon, shape, batch):
    x = _data(shape, seed=num_bins)
    spec = {"type": "Discretization", "num_bins": num_bins, "epsilon": epsilon}
    ours = _kcli_adapted(spec, x, batch)
    expected = _keras_boundaries(x, num_bins, epsilon, batch)
    assert ours.bin_boundaries.tolist() == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert len(expected) + 1 == layer_registry.validate_spec(spec).depth()
    theirs = keras.layers.Discretization(bin_boundaries=expected)
    probe = torch.from_numpy(_data(shape, seed=7)[:20])
    edges = expected[:3]
    probe.view(-1)[: len(edges)] = torch.tensor(edges, dtype=torch.float32)  # on the edges
    assert torch.equal(ours(probe), theirs(probe).cpu().to(torch.int32))
