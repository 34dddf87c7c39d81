"""Data functions for recipes/generator.yaml and recipes/seq2seq.yaml, beside their recipes.

A `python:gallery_data:NAME` source imports this module (the recipe's folder is put on the
import path) and calls NAME with the recipe's `params:`, plus `seed` (the recipe's seed unless
`params` gives one). `spiral_batches` is a generator in Keras' sense: an endless stream of
freshly drawn (x, y) batches, so the model never sees the same point twice; `spirals` returns one
fixed (x, y) pair, for the validation and test sources. `reversal_pairs` is the seq2seq
task: two inputs (the encoder's sequence, the decoder's teacher-forced one) and per-step labels.
`digits_with_ink` gives two targets per image, for recipes/multi_output.yaml.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def _draw(rng: np.random.Generator, n: int, arms: int, noise: float):
    """n points on `arms` spiral arms in 2-D: radius r in [0.1, 1], angle turning with r."""
    y = rng.integers(0, arms, size=n)
    radius = rng.uniform(0.1, 1.0, size=n)
    angle = 2 * np.pi * (y / arms + 1.25 * radius)
    x = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    x = x + noise * rng.normal(size=x.shape)
    return x.astype(np.float32), y.astype(np.int64)


def spiral_batches(
    batch_size: int = 64, arms: int = 3, noise: float = 0.03, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless batches of new spiral points; the recipe's `steps_per_epoch` ends each epoch."""
    rng = np.random.default_rng(seed)
    while True:
        yield _draw(rng, batch_size, arms, noise)


def spirals(
    n_samples: int = 300, arms: int = 3, noise: float = 0.03, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """One fixed set of spiral points (x float32 (n, 2), y int64 class indices)."""
    return _draw(np.random.default_rng(seed), n_samples, arms, noise)


def reversal_pairs(
    n_samples: int = 800, length: int = 5, vocab: int = 6, seed: int = 0
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Reverse a sequence of tokens, as an encoder-decoder learns to (Keras' seq2seq example).

    Tokens 1..vocab-1 (0 is the decoder's start token). x: `encoder_in`, the one-hot source
    (n, length, vocab); `decoder_in`, the one-hot target shifted right behind the start token
    (teacher forcing). y: the reversed source's tokens, (n, length) int64, one label per step.
    """
    rng = np.random.default_rng(seed)
    source = rng.integers(1, vocab, size=(n_samples, length))
    target = source[:, ::-1]
    shifted = np.concatenate([np.zeros((n_samples, 1), np.int64), target[:, :-1]], axis=1)
    one_hot = np.eye(vocab, dtype=np.float32)
    x = {"encoder_in": one_hot[source], "decoder_in": one_hot[shifted]}
    return x, np.ascontiguousarray(target)


def digits_with_ink(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """scikit-learn's 8x8 digits with two targets each, for a model of two outputs.

    x: the images scaled to [0, 1], (n, 8, 8, 1). y: `digit`, the class (0-9), and `ink`, how
    many of the 64 pixels' worth of full brightness the image holds (its summed brightness, about
    15 to 45: a number a regression head learns).
    `seed` is unused: the data set is fixed.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    ink = images.sum(axis=(1, 2, 3)).astype(np.float32)
    return images, {"digit": digits.target.astype(np.int64), "ink": ink[:, None]}
