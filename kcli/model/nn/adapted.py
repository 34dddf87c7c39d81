"""Keras' Normalization and IntegerLookup: statistics and vocabularies adapted on the train split.

Both learn through AdaptableModule's reset/update/finalize steps (kcli.train.adapt runs them)
into persistent buffers, or take what the recipe gives. Normalization's adapted mean, variance
and count are Keras weights (non-trainable, counted); its given mean and variance are constants.
IntegerLookup's vocabulary is state outside Keras' weights (not counted).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from kcli.model.nn.adaptable import AdaptableModule
from kcli.model.nn.encoding import encode
from kcli.model.nn.fingerprint import decimal_strings, farmhash64, siphash24, unsigned_mod

EPSILON = 1e-7  # keras.backend.epsilon(): the smallest standard deviation divided by


class NormalizationModule(AdaptableModule):
    """(x - mean) / max(sqrt(variance), 1e-7), or its inverse, per index of the kept axes.

    `keep` are the kept axes of the batched input (never 0, the batch), sorted; every other axis
    is reduced when adapting. The variance is the population variance, batches combined with
    Keras' weighted update (in float64 here, float32 when stored).
    """

    keras_weight_buffers = ("mean", "variance", "count")

    def __init__(
        self,
        input_shape: tuple[int, ...],
        keep: tuple[int, ...],
        mean=None,
        variance=None,
        invert: bool = False,
    ) -> None:
        super().__init__(adapts=mean is None)
        ndim = len(input_shape) + 1
        self.keep = keep
        self.reduce = tuple(d for d in range(ndim) if d not in keep)
        self.broadcast = [1] + [input_shape[d - 1] if d in keep else 1 for d in range(1, ndim)]
        self.invert = invert
        kept_shape = tuple(input_shape[d - 1] for d in keep)
        if mean is None:
            self.register_buffer("mean", torch.zeros(kept_shape))
            self.register_buffer("variance", torch.ones(kept_shape))
            # Keras keeps a count for older saved models and never updates it.
            self.register_buffer("count", torch.zeros((), dtype=torch.int32))
            self._given = None
        else:
            # Plain tensors, not buffers: constants of the recipe, no weights to save or count.
            self._given = tuple(
                torch.from_numpy(_broadcast(value, keep, self.broadcast))
                for value in (mean, variance)
            )
        self._totals: tuple[torch.Tensor, torch.Tensor, int] | None = None

    def reset_state(self) -> None:
        zeros = torch.zeros(tuple(self.mean.shape), dtype=torch.float64)
        self._totals = (zeros, zeros.clone(), 0)

    def update_state(self, x: torch.Tensor) -> None:
        total_mean, total_var, total_count = self._totals
        batch = x.detach().to(torch.float64).cpu()
        batch_mean = batch.mean(dim=self.reduce)
        batch_var = batch.var(dim=self.reduce, unbiased=False)
        batch_count = math.prod(batch.shape[d] for d in self.reduce)
        if batch_count == 0:
            return
        count = total_count + batch_count
        weight = batch_count / count
        new_mean = total_mean * (1 - weight) + batch_mean * weight
        # Each part's variance about the combined mean, weighted by its share of the values.
        total_var = (total_var + (total_mean - new_mean) ** 2) * (1 - weight) + (
            batch_var + (batch_mean - new_mean) ** 2
        ) * weight
        self._totals = (new_mean, total_var, count)

    def finalize_state(self) -> None:
        total_mean, total_var, count = self._totals
        self._totals = None
        if count == 0:
            raise ValueError("the train split gave it no values to adapt on")
        self.mean.copy_(total_mean.to(torch.float32))
        self.variance.copy_(total_var.to(torch.float32))

    def _statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._given is None:
            return self.mean.reshape(self.broadcast), self.variance.reshape(self.broadcast)
        mean, variance = self._given
        return mean.to(x.device), variance.to(x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        mean, variance = self._statistics(x)
        scale = torch.clamp_min(torch.sqrt(variance), EPSILON)
        if self.invert:
            return mean + x * scale
        return (x - mean) / scale


class IntegerLookupModule(AdaptableModule):
    """Integer tokens -> vocabulary indices (or back, with `invert`), as Keras' IntegerLookup.

    Indices: the mask token's 0 (int mode with a mask_token), then `num_oov_indices` OOV indices,
    then the vocabulary's tokens. `tokens` holds the vocabulary (capacity entries, the first
    `size` used), compared with every input value: a fixed-shape lookup every exporter takes.
    """

    def __init__(self, spec, tokens: list[int] | None, idf: list[float] | None) -> None:
        super().__init__(adapts=tokens is None)
        self.output_mode = spec.output_mode
        self.invert = spec.invert
        self.num_oov = spec.num_oov_indices
        self.mask_token, self.oov_token = spec.mask_token, spec.oov_token
        self.max_tokens, self.pad = spec.max_tokens, spec.pad_to_max_tokens
        self.farmhash, self.salt = spec.oov_method == "farmhash", spec.salt_key()
        self.oov_start = spec.oov_start()
        self.token_start = spec.token_start()
        self.depth = spec.depth()
        capacity = len(tokens) if tokens is not None else spec.max_tokens - self.token_start
        self.register_buffer("tokens", torch.tensor(tokens or [0] * capacity, dtype=torch.int64))
        self.register_buffer("size", torch.tensor(len(tokens or []), dtype=torch.int64))
        if self.output_mode == "tf_idf":
            self.register_buffer("idf_weights", torch.tensor(idf or [0.0] * self.depth))
        self._counts: dict | None = None

    # ---- adapt: token frequencies (and document frequencies for tf_idf) over the train split

    def reset_state(self) -> None:
        self._counts = {"tokens": {}, "documents": {}, "n_documents": 0}

    def update_state(self, x: torch.Tensor) -> None:
        values = x.detach().cpu().to(torch.int64).numpy()
        rows = values.reshape(len(values), -1)  # each sample is a document
        _add_counts(self._counts["tokens"], rows.reshape(-1))
        if self.output_mode == "tf_idf":
            row_ids = np.repeat(np.arange(len(rows)), rows.shape[1])
            pairs = np.unique(np.stack([row_ids, rows.reshape(-1)]), axis=1)
            _add_counts(self._counts["documents"], pairs[1])
            self._counts["n_documents"] += len(rows)

    def finalize_state(self) -> None:
        counts, self._counts = self._counts, None
        frequency = dict(counts["tokens"])
        for special in (self.mask_token, self.oov_token):
            frequency.pop(special, None)
        # Most frequent first; ties: the larger token first (Keras' reversed lexsort).
        ranked = sorted(frequency, key=lambda t: (frequency[t], t), reverse=True)
        ranked = ranked[: len(self.tokens)]
        self.tokens.zero_()
        self.tokens[: len(ranked)] = torch.tensor(ranked, dtype=torch.int64)
        self.size.fill_(len(ranked))
        if self.output_mode == "tf_idf":
            self.idf_weights.copy_(torch.from_numpy(self._learned_idf(ranked, counts)))

    def _learned_idf(self, ranked: list[int], counts: dict) -> np.ndarray:
        """log(1 + documents / (1 + the token's documents)); the OOV slots get their mean."""
        documents = np.array([counts["documents"].get(t, 0) for t in ranked], dtype=np.int64)
        idf = np.log(1 + counts["n_documents"] / (1 + documents)).astype(np.float32)
        weights = np.zeros(self.depth, dtype=np.float32)
        weights[: self.token_start] = idf.mean(dtype=np.float32) if len(idf) else 0.0
        weights[self.token_start : self.token_start + len(idf)] = idf
        return weights

    # ---- the lookup

    def _oov_index(self, x: torch.Tensor) -> torch.Tensor | int:
        if self.num_oov == 0:
            return -1  # Keras raises; -1 encodes as zeros, so no value can stop a batch
        if self.num_oov == 1:
            return self.oov_start
        if not self.farmhash:
            return torch.remainder(x, self.num_oov) + self.oov_start  # floor modulo, as TF's
        data, length = decimal_strings(x.reshape(-1))
        hashes = (
            farmhash64(data, length) if self.salt is None else siphash24(data, length, self.salt)
        )
        return unsigned_mod(hashes, self.num_oov).reshape(x.shape) + self.oov_start

    def _indices(self, x: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(len(self.tokens), device=x.device)
        hit = (x.unsqueeze(-1) == self.tokens) & (positions < self.size)
        index = (hit.to(torch.int64) * positions).sum(dim=-1) + self.token_start
        index = torch.where(hit.any(dim=-1), index, self._oov_index(x))
        if self.mask_token is not None:
            # int mode: the mask's index 0; the encodings drop it (an index past the depth).
            masked = 0 if self.output_mode == "int" else self.depth
            index = torch.where(x == self.mask_token, masked, index)
        return index

    def _tokens_of(self, index: torch.Tensor) -> torch.Tensor:
        position = index - self.token_start
        known = (position >= 0) & (position < self.size)
        found = self.tokens[position.clamp(0, max(len(self.tokens) - 1, 0))]
        out = torch.where(known, found, self.oov_token)
        if self.mask_token is not None:
            out = torch.where(index == 0, self.mask_token, out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.int64)
        if self.invert:
            return self._tokens_of(x)
        index = self._indices(x)
        if self.output_mode == "int":
            return index
        if self.output_mode == "tf_idf":
            return encode(index, "count", self.depth) * self.idf_weights
        return encode(index, self.output_mode, self.depth)


def _broadcast(value, keep: tuple[int, ...], shape: list[int]) -> np.ndarray:
    """A given mean or variance as Keras broadcasts it: a scalar everywhere, else its axes
    matched to the kept axes from the right."""
    array = np.asarray(value, dtype=np.float32)
    if array.ndim:
        expanded = [1] * len(shape)
        for i in range(1, array.ndim + 1):
            expanded[keep[-i]] = array.shape[-i]
        array = array.reshape(expanded)
    return np.array(np.broadcast_to(array, shape))  # a writable copy


def _add_counts(table: dict, values: np.ndarray) -> None:
    tokens, counts = np.unique(values, return_counts=True)
    for token, count in zip(tokens.tolist(), counts.tolist(), strict=True):
        table[token] = table.get(token, 0) + count
