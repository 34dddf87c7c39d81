"""Categorical encodings: Keras' CategoryEncoding, Discretization and Hashing.

`encode` is Keras' `encode_categorical_inputs` as its torch backend computes it: one_hot adds a
last axis of `depth` (replacing a last axis of size 1), multi_hot and count reduce over the
first axis of each sample. Ids outside [0, depth) encode as zeros, so no value of the data
can stop a batch (Keras' torch backend raises for an id >= depth). The constants (given bin
boundaries, the salt) are Python values, not buffers: they are no weights.
"""

from __future__ import annotations

import torch
from torch import nn

from kcli.model.nn.adaptable import AdaptableModule
from kcli.model.nn.fingerprint import decimal_strings, farmhash64, siphash24, unsigned_mod


def encode(ids: torch.Tensor, mode: str, depth: int) -> torch.Tensor:
    """Integer ids (N, ...) as Keras' output_mode encodes them; float32 but for `int`."""
    if mode == "int":
        return ids
    if mode == "one_hot":
        if ids.dim() > 1 and ids.shape[-1] == 1:
            ids = ids.squeeze(-1)
        classes = torch.arange(depth, device=ids.device)
        return (ids.unsqueeze(-1) == classes).to(torch.float32)
    # multi_hot / count: tokens along axis 1, so (N, T, *rest) -> (N, *rest, depth)
    tokens = ids.movedim(1, -1)
    inside = (tokens >= 0) & (tokens < depth)
    counts = torch.zeros((*tokens.shape[:-1], depth), dtype=torch.float32, device=ids.device)
    counts.scatter_add_(-1, tokens.clamp(0, depth - 1), inside.to(torch.float32))
    return counts if mode == "count" else (counts > 0).to(torch.float32)


class CategoryEncodingModule(nn.Module):
    """Integer ids (floats holding whole numbers too) -> one-hot, multi-hot or count vectors."""

    def __init__(self, num_tokens: int, output_mode: str) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.output_mode = output_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return encode(x.long(), self.output_mode, self.num_tokens)


class DiscretizationModule(AdaptableModule):
    """Values -> the index of their bin: i where boundaries[i-1] <= x < boundaries[i].

    The index counts the boundaries at or below the value, as torch.bucketize(right=True)
    does, written as comparisons so every exporter takes it; NaN falls in the last bin, as
    bucketize puts it. `int` mode gives int32 (Keras' dtype), the others float32 vectors.

    Given boundaries are constants; with `num_bins` they are learned on the train split with
    Keras' approximate quantiles (kcli.model.nn.quantiles, accuracy `epsilon`) into the
    `bin_boundaries` buffer (saved with the weights; no Keras weight, so not counted).
    """

    def __init__(
        self,
        boundaries: list[float] | None,
        output_mode: str,
        n_learned: int = 0,
        num_bins: int | None = None,
        epsilon: float = 0.01,
    ) -> None:
        super().__init__(adapts=boundaries is None)
        self.boundaries = None if boundaries is None else list(boundaries)
        self.output_mode = output_mode
        self.num_bins, self.epsilon = num_bins, epsilon
        self.n_edges = len(boundaries) if boundaries is not None else n_learned
        if boundaries is None:
            self.register_buffer("bin_boundaries", torch.zeros(n_learned))
        self._summary = None

    def reset_state(self) -> None:
        from kcli.model.nn.quantiles import empty_summary

        self._summary = empty_summary()

    def update_state(self, x: torch.Tensor) -> None:
        from kcli.model.nn.quantiles import batch_summary, merged_summary

        values = x.detach().to(torch.float32).cpu().numpy()
        summary = batch_summary(values, self.epsilon)
        self._summary = merged_summary(summary, self._summary, self.epsilon)

    def finalize_state(self) -> None:
        from kcli.model.nn.quantiles import bin_boundaries

        edges = bin_boundaries(self._summary, self.num_bins)
        self._summary = None
        if len(edges) != self.n_edges:
            raise ValueError(
                f"num_bins={self.num_bins} needs at least {self.n_edges + 1} values in the "
                f"train split to learn {self.n_edges} bin boundaries; it learned {len(edges)}"
            )
        self.bin_boundaries.copy_(torch.as_tensor(edges, dtype=torch.float32))

    def _edges(self, x: torch.Tensor) -> torch.Tensor:
        if self.boundaries is None:
            return self.bin_boundaries.to(torch.float32)
        return torch.tensor(self.boundaries, dtype=torch.float32, device=x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        index = (x.unsqueeze(-1) >= self._edges(x)).sum(dim=-1)
        index = torch.where(torch.isnan(x), self.n_edges, index)
        if self.output_mode == "int":
            return index.to(torch.int32)
        return encode(index, self.output_mode, self.n_edges + 1)


class HashingModule(nn.Module):
    """Values -> hash bins, as Keras' Hashing computes them for integer (or float) inputs.

    Each value (a float truncated to int64) is hashed as its decimal string with FarmHash64,
    or SipHash-2-4 keyed by `salt`; the bin is the hash modulo the bins. With a `mask_value`
    (and more than one bin) that value goes to bin 0 and the others hash into 1..num_bins-1.
    """

    def __init__(
        self,
        num_bins: int,
        mask_value: int | None,
        salt: tuple[int, int] | None,
        output_mode: str,
    ) -> None:
        super().__init__()
        self.num_bins = num_bins
        self.mask_value = mask_value
        self.salt = salt
        self.output_mode = output_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.output_mode == "one_hot" and x.dim() > 0 and x.shape[-1] == 1:
            x = x.squeeze(-1)  # Keras' Hashing drops a last axis of 1 before encoding
        bins = self.num_bins
        masked = None
        if self.mask_value is not None and bins > 1:
            bins -= 1
            masked = x == self.mask_value
        flat = x.reshape(-1).long()
        data, length = decimal_strings(flat)
        if self.salt is None:
            hashes = farmhash64(data, length)
        else:
            hashes = siphash24(data, length, self.salt)
        index = unsigned_mod(hashes, bins).reshape(x.shape)
        if masked is not None:
            index = torch.where(masked, 0, index + 1)
        return encode(index, self.output_mode, self.num_bins)
