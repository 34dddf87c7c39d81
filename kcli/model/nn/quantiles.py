"""Keras' approximate quantiles (Discretization's adapt with `num_bins`), in NumPy.

A summary is a (2, k) float32 array: sorted values and the weight (sample count) each stands
for. A batch is summarized by taking every `step`-th of its sorted values, `step` being its
size times `epsilon` (at least 1), each weighing `step`; two summaries are merged by sorting
their columns together and, once there are 1/epsilon or more of them, resampling the values
at the cumulative-weight fractions epsilon, 2*epsilon, ... 1 by linear interpolation. The bin
boundaries are that resampling at 1/num_bins, less its last point (the maximum). The
arithmetic (float32 storage, float64 interpolation, NumPy's arange of the fractions) is
Keras' own, so the same batches give the same boundaries.
"""

from __future__ import annotations

import numpy as np

EMPTY_SUMMARY_SHAPE = (2, 0)


def empty_summary() -> np.ndarray:
    return np.zeros(EMPTY_SUMMARY_SHAPE, dtype=np.float32)


def batch_summary(values: np.ndarray, epsilon: float) -> np.ndarray:
    """Every step-th sorted value of a batch, each weighing `step` samples."""
    ordered = np.sort(np.asarray(values, dtype=np.float32).reshape(-1))
    step = max(ordered.size * epsilon, 1)  # size / (1 / epsilon) in Keras' terms
    kept = ordered[int(step) - 1 :: int(step)] if ordered.size else ordered
    return np.stack([kept, np.full_like(kept, step)])


def merged_summary(new: np.ndarray, old: np.ndarray, epsilon: float) -> np.ndarray:
    """Both summaries' columns in value order, resampled to ~1/epsilon columns if longer."""
    columns = np.concatenate((new, old), axis=1)
    return resampled(columns[:, np.argsort(columns[0])], epsilon)


def resampled(summary: np.ndarray, epsilon: float) -> np.ndarray:
    """The summary at cumulative-weight fractions epsilon, 2*epsilon ... (unchanged if short)."""
    if summary.shape[1] * epsilon < 1:
        return summary
    fractions = epsilon + np.arange(0.0, 1.0, epsilon)
    cumulative = summary[1].cumsum()
    where = cumulative / cumulative[-1]
    values = np.interp(fractions, where, summary[0])
    at = np.interp(fractions, where, cumulative)
    weights = np.diff(at, prepend=0.0)
    return np.stack((values, weights)).astype(np.float32)


def bin_boundaries(summary: np.ndarray, num_bins: int) -> np.ndarray:
    """The num_bins - 1 inner edges of equal-weight bins (fewer for tiny data)."""
    return resampled(summary, 1.0 / num_bins)[0, :-1]
