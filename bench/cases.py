"""The benchmark's five cases: the arrays, and the same model as a kcli recipe, a hand-written
torch module and a Keras 3 model.

Every variant trains on the very same NumPy arrays (made once per case, seeded). Sizes come in
two scales: `full` (what bench/RESULTS.md reports) and `smoke` (tiny, for CI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Case:
    """One benchmark case: arrays, batch size and the model in three spellings."""

    name: str
    title: str
    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    batch_size: int
    layers: list[dict[str, Any]]  # kcli recipe layers (Keras names and arguments)
    input_shape: list[int]
    n_classes: int
    learning_rate: float = 1e-3
    notes: list[str] = field(default_factory=list)
    # The sizes a hand-written model of a graph case is built from (the transformer's).
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return len(self.x)

    def recipe(self, data_path: str, val_path: str, **fit: Any) -> dict[str, Any]:
        """The kcli recipe training this case on the arrays saved at the two .npz paths."""
        return {
            "name": f"bench_{self.name}",
            "seed": 0,
            "data": {"source": data_path, "validation": val_path},
            "model": {"input_shape": list(self.input_shape), "layers": self.layers},
            "compile": {
                "optimizer": {"type": "Adam", "learning_rate": self.learning_rate},
                "loss": "sparse_categorical_crossentropy",
                "metrics": ["accuracy"],
            },
            "fit": {"epochs": 1, "batch_size": self.batch_size, **fit},
        }

    def resized(self, n: int) -> Case:
        """The same case on the first `n` training samples (for the linearity check)."""
        clone = Case(**{**self.__dict__, "x": self.x[:n], "y": self.y[:n]})
        clone.notes = list(self.notes)
        return clone

    def forward_flops_per_sample(self) -> float:
        """Multiply-adds x 2 of one sample's forward pass, for Dense-only models (else 0)."""
        width, flops = self.input_shape[-1], 0.0
        for layer in self.layers:
            if layer["type"] != "Dense":
                return 0.0
            flops += 2.0 * width * layer["units"]
            width = layer["units"]
        return flops


def _labels_from_projection(x: np.ndarray, n_classes: int, rng: np.random.Generator):
    """Learnable labels: the argmax of a fixed random projection of the (flattened) inputs."""
    flat = x.reshape(len(x), -1)
    projection = rng.standard_normal((flat.shape[1], n_classes)).astype(np.float32)
    return (flat @ projection).argmax(axis=1).astype(np.int64)


def _split(x: np.ndarray, y: np.ndarray, n_val: int, rng: np.random.Generator):
    order = rng.permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def mlp_digits(scale: str) -> Case:
    """Small MLP on scikit-learn's digits: 64-128-10, batch 32 (host overhead dominates)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(0)
    if scale == "smoke":
        x, y = x[:400], y[:400]
    x, y, xv, yv = _split(x, y, len(x) // 5, rng)
    layers = [
        {"type": "Dense", "units": 128, "activation": "relu"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ]
    return Case(
        "mlp_digits", "small MLP, digits 64-128-10, batch 32", x, y, xv, yv, 32, layers, [64], 10
    )


def mlp_compute(scale: str, n: int = 100_000) -> Case:
    """Compute-bound MLP: n x 100 synthetic, 512-512-10, batch 256."""
    n = 2_000 if scale == "smoke" else n
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n + n // 10, 100), dtype=np.float32)
    y = _labels_from_projection(x, 10, rng)
    x, y, xv, yv = _split(x, y, n // 10, rng)
    layers = [
        {"type": "Dense", "units": 512, "activation": "relu"},
        {"type": "Dense", "units": 512, "activation": "relu"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ]
    return Case(
        "mlp_compute",
        f"compute-bound MLP, {n // 1000}k x 100, 512-512-10, batch 256",
        x,
        y,
        xv,
        yv,
        256,
        layers,
        [100],
        10,
    )


def cnn(scale: str) -> Case:
    """Small CNN on synthetic 32x32x3 images (channels last, as Keras)."""
    n = 256 if scale == "smoke" else 4_000
    rng = np.random.default_rng(2)
    x = rng.random((n + n // 5, 32, 32, 3), dtype=np.float32)
    y = _labels_from_projection(x, 10, rng)
    x, y, xv, yv = _split(x, y, n // 5, rng)
    layers = [
        {"type": "Conv2D", "filters": 16, "kernel_size": 3, "activation": "relu"},
        {"type": "MaxPooling2D", "pool_size": 2},
        {"type": "Conv2D", "filters": 32, "kernel_size": 3, "activation": "relu"},
        {"type": "MaxPooling2D", "pool_size": 2},
        {"type": "Flatten"},
        {"type": "Dense", "units": 64, "activation": "relu"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ]
    return Case(
        "cnn",
        f"small CNN, {n // 1000}k synthetic 32x32x3, batch 64",
        x,
        y,
        xv,
        yv,
        64,
        layers,
        [32, 32, 3],
        10,
    )


def lstm(scale: str) -> Case:
    """LSTM(64) on synthetic sequences (30 steps x 8 features), 5 classes, batch 64."""
    n = 256 if scale == "smoke" else 4_000
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n + n // 5, 30, 8), dtype=np.float32)
    y = _labels_from_projection(x.cumsum(axis=1), 5, rng)
    x, y, xv, yv = _split(x, y, n // 5, rng)
    layers = [
        {"type": "LSTM", "units": 64},
        {"type": "Dense", "units": 5, "activation": "softmax"},
    ]
    return Case(
        "lstm",
        f"LSTM(64), {n // 1000}k sequences 30x8, batch 64",
        x,
        y,
        xv,
        yv,
        64,
        layers,
        [30, 8],
        5,
    )


def encoder_layers(vocab: int, d_model: int, heads: int, ff: int, blocks: int, n_classes: int):
    """A transformer encoder as kcli recipe layers (a graph: each block's residuals by name):
    Embedding, then per block MultiHeadAttention (self-attention) + Add + LayerNormalization and
    Dense(ff, relu) - Dense(d_model) + Add + LayerNormalization; GlobalAveragePooling1D and a
    softmax Dense."""
    layers: list[dict[str, Any]] = [
        {"name": "embed", "type": "Embedding", "input_dim": vocab, "output_dim": d_model}
    ]
    previous = "embed"
    for b in range(blocks):
        layers += [
            {
                "name": f"attention_{b}",
                "type": "MultiHeadAttention",
                "num_heads": heads,
                "key_dim": d_model // heads,
                "inputs": previous,
            },
            {"name": f"attention_add_{b}", "type": "Add", "inputs": [previous, f"attention_{b}"]},
            {"name": f"attention_norm_{b}", "type": "LayerNormalization"},
            {"name": f"ff_hidden_{b}", "type": "Dense", "units": ff, "activation": "relu"},
            {"name": f"ff_out_{b}", "type": "Dense", "units": d_model},
            {
                "name": f"ff_add_{b}",
                "type": "Add",
                "inputs": [f"attention_norm_{b}", f"ff_out_{b}"],
            },
            {"name": f"ff_norm_{b}", "type": "LayerNormalization"},
        ]
        previous = f"ff_norm_{b}"
    layers += [
        {"name": "pool", "type": "GlobalAveragePooling1D"},
        {"name": "probs", "type": "Dense", "units": n_classes, "activation": "softmax"},
    ]
    return layers


def transformer(scale: str) -> Case:
    """Transformer encoder on synthetic token sequences of 128: 2 MultiHeadAttention blocks."""
    n = 64 if scale == "smoke" else 2_000
    length, vocab, n_classes = 128, 1_000, 4
    sizes = {"vocab": vocab, "d_model": 64, "heads": 4, "ff": 128, "blocks": 2}
    rng = np.random.default_rng(4)
    x = rng.integers(1, vocab, (n + n // 5, length), dtype=np.int64)
    counts = np.zeros((len(x), vocab), dtype=np.float32)  # learnable labels: a bag of words
    np.add.at(counts, (np.arange(len(x))[:, None], x), 1.0)
    y = _labels_from_projection(counts, n_classes, rng)
    x, y, xv, yv = _split(x, y, n // 5, rng)
    layers = encoder_layers(n_classes=n_classes, **sizes)
    return Case(
        "transformer",
        f"transformer encoder, 2 MultiHeadAttention blocks, {n} sequences of 128, batch 32",
        x,
        y,
        xv,
        yv,
        32,
        layers,
        [length],
        n_classes,
        notes=["token ids (int64); d_model 64, 4 heads of 16, feed-forward 128"],
        sizes=sizes,
    )


CASES = {
    "mlp_digits": mlp_digits,
    "mlp_compute": mlp_compute,
    "cnn": cnn,
    "lstm": lstm,
    "transformer": transformer,
}


def make_case(name: str, scale: str, **kwargs: Any) -> Case:
    return CASES[name](scale, **kwargs)
