"""Attention modules: Keras' MultiHeadAttention, Attention (Luong) and AdditiveAttention (Bahdanau).

Inputs are (N, T, features) sequences, channels last as in Keras. Weights are kept in Keras'
layout and named as Keras names them: MultiHeadAttention's projections are submodules `query`,
`key`, `value` and `attention_output` (Keras' EinsumDense sublayers), each with a `kernel` of
shape (*inputs, *outputs) and a `bias` of the outputs' shape. A projection runs as one F.linear
on a view of its kernel, so no weight is copied or transposed at any step.

The dot-product scores go through torch's fused F.scaled_dot_product_attention, which picks a
flash or memory-efficient kernel where the device has one: dropout applies to the attention
probabilities, in training only, and a causal mask is its `is_causal` (query i attends to keys
j <= i, aligned at the top left when the lengths differ, as Keras' mask is).

Keras masks (`mask=`: the inputs' masks, one per input, from Masking or Embedding mask_zero)
mask the scores as Keras does. MultiHeadAttention ANDs the query's (per row), the value's and
the key's (per column) and the causal mask, and adds Keras' large negative (-0.7 * float32's
max) where it is False, as Keras' torch backend does; with dropout Keras takes its explicit
path instead, whose fully masked rows (a masked query step) attend to nothing: zeros there.
Attention and AdditiveAttention subtract 1e9 from the scores of masked value steps and zero
the output at masked query steps, as Keras' Attention does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Projection(nn.Module):
    """Keras' EinsumDense over the last axis: (..., prod(in_shape)) -> (..., prod(out_shape)).

    `kernel` has shape (*in_shape, *out_shape) and `bias` out_shape, as Keras keeps them.
    """

    def __init__(
        self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], use_bias: bool
    ) -> None:
        super().__init__()
        self.n_in, self.n_out = math.prod(in_shape), math.prod(out_shape)
        self.kernel = nn.Parameter(torch.empty(*in_shape, *out_shape))
        self.bias = nn.Parameter(torch.empty(out_shape)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # kernel viewed as (in, out); its transpose is what F.linear takes (x @ kernel).
        weight = self.kernel.reshape(self.n_in, self.n_out).t()
        bias = None if self.bias is None else self.bias.reshape(self.n_out)
        return F.linear(x, weight, bias)


class MultiHeadAttentionModule(nn.Module):
    """Keras' MultiHeadAttention on (N, T, D) sequences: forward(query, value=None, key=None).

    One input is self-attention (query = value = key); two are [query, value] (key = value).
    Each head attends with softmax(q k^T / sqrt(key_dim)) over the keys; the heads' outputs are
    projected by `attention_output` to `output_shape` (default: the query's feature size).
    """

    def __init__(
        self,
        dims: tuple[int, int, int],  # feature sizes of query, value, key
        num_heads: int,
        key_dim: int,
        value_dim: int,
        output_shape: tuple[int, ...],
        use_bias: bool,
        dropout: float,
        causal: bool,
    ) -> None:
        super().__init__()
        query_dim, value_in, key_in = dims
        self.num_heads, self.key_dim, self.value_dim = num_heads, key_dim, value_dim
        self.out_shape = output_shape
        self.dropout, self.causal = dropout, causal
        self.scale = 1.0 / math.sqrt(key_dim)
        self.query = Projection((query_dim,), (num_heads, key_dim), use_bias)
        self.key = Projection((key_in,), (num_heads, key_dim), use_bias)
        self.value = Projection((value_in,), (num_heads, value_dim), use_bias)
        self.attention_output = Projection((num_heads, value_dim), output_shape, use_bias)

    def _heads(self, x: torch.Tensor, size: int) -> torch.Tensor:
        """(N, T, heads * size) -> (N, heads, T, size), a view."""
        return x.unflatten(-1, (self.num_heads, size)).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        value: torch.Tensor | None = None,
        key: torch.Tensor | None = None,
        mask: list | None = None,
    ) -> torch.Tensor:
        allowed = None
        if mask is not None:  # (N, Tq, Tv): True where a query step may attend a key step
            allowed = _attention_mask(query, mask, self.causal)
        value = query if value is None else value
        key = value if key is None else key
        q = self._heads(self.query(query), self.key_dim)
        k = self._heads(self.key(key), self.key_dim)
        v = self._heads(self.value(value), self.value_dim)
        if allowed is None:
            context = F.scaled_dot_product_attention(
                q,
                k,
                v,
                dropout_p=self.dropout if self.training else 0.0,
                is_causal=self.causal,
                scale=self.scale,
            )
        else:
            bias = torch.where(allowed, 0.0, _LARGE_NEGATIVE).to(q.dtype).unsqueeze(1)
            context = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=bias,
                dropout_p=self.dropout if self.training else 0.0,
                scale=self.scale,
            )
            if self.dropout > 0:  # Keras' explicit masked softmax: nothing to attend, zeros
                context = torch.where(allowed.any(-1)[:, None, :, None], context, 0.0)
        out = self.attention_output(context.transpose(1, 2).flatten(2))
        return out.unflatten(-1, self.out_shape) if len(self.out_shape) > 1 else out


# Keras' torch backend's additive mask value for float32 (its _get_large_negative).
_LARGE_NEGATIVE = 3.38953e38 * -0.7


def _attention_mask(query: torch.Tensor, masks: list, causal: bool) -> torch.Tensor | None:
    """Keras' MultiHeadAttention._compute_attention_mask from [query, value, key]'s masks (one
    input: self-attention, its mask is the query's and the value's)."""
    query_mask = masks[0]
    value_mask = masks[1] if len(masks) > 1 else masks[0]
    key_mask = masks[2] if len(masks) > 2 else None
    allowed = None
    if query_mask is not None:
        allowed = query_mask.unsqueeze(-1)
    for columns in (value_mask, key_mask):
        if columns is not None:
            m = columns.unsqueeze(-2)
            allowed = m if allowed is None else allowed & m
    if allowed is not None and causal:
        rows, cols = query.shape[1], allowed.shape[-1]
        allowed = allowed & torch.ones(rows, cols, dtype=torch.bool, device=query.device).tril()
    if allowed is not None:
        allowed = allowed.expand(query.shape[0], query.shape[1], allowed.shape[-1])
    return allowed


def _score_mask(scores: torch.Tensor, value_mask, causal: bool) -> torch.Tensor | None:
    """Keras' Attention._calculate_score_mask: the value's mask (N, 1, Tv), AND the causal."""
    if value_mask is None:
        return None
    allowed = value_mask.unsqueeze(-2)
    return allowed & _causal_mask(scores) if causal else allowed


def _causal_mask(scores: torch.Tensor) -> torch.Tensor:
    """True where query i may attend key j (j <= i), for (..., Tq, Tv) scores."""
    rows, cols = scores.shape[-2:]
    return torch.ones(rows, cols, dtype=torch.bool, device=scores.device).tril()


class _ScoredAttention(nn.Module):
    """softmax(scores) @ value for scores that are not a plain dot product (concat, additive)."""

    def __init__(self, dropout: float, causal: bool) -> None:
        super().__init__()
        self.dropout, self.causal = dropout, causal

    def _attend(
        self, scores: torch.Tensor, value: torch.Tensor, allowed: torch.Tensor | None = None
    ) -> torch.Tensor:
        if allowed is not None:  # Keras: 1e9 off the masked scores (causal included)
            scores = torch.where(allowed, scores, scores - 1.0e9)
        elif self.causal:
            scores = scores.masked_fill(~_causal_mask(scores), -torch.inf)
        weights = torch.softmax(scores, dim=-1)
        if self.training and self.dropout > 0:
            weights = F.dropout(weights, self.dropout)
        return weights @ value


class DotAttentionModule(_ScoredAttention):
    """Keras' Attention: forward(query, value, key=None) on (N, Tq, d), (N, Tv, dv), (N, Tv, d).

    score_mode "dot": scores q k^T (times the scalar `scale` with use_scale), through the fused
    kernel; "concat": concat_score_weight * sum(tanh(scale * (q_i + k_j))) over the features.
    """

    def __init__(self, use_scale: bool, concat: bool, dropout: float, causal: bool) -> None:
        super().__init__(dropout, causal)
        self.concat = concat
        self.scale = nn.Parameter(torch.ones(())) if use_scale else None
        self.concat_score_weight = nn.Parameter(torch.ones(())) if concat else None

    def forward(
        self,
        query: torch.Tensor,
        value: torch.Tensor,
        key: torch.Tensor | None = None,
        mask: list | None = None,
    ) -> torch.Tensor:
        out = self._forward(query, value, key, mask)
        return _zero_masked_queries(out, mask)

    def _forward(self, query, value, key, mask) -> torch.Tensor:
        key = value if key is None else key
        value_mask = mask[1] if mask is not None else None
        if self.concat_score_weight is None and value_mask is not None:
            q = query if self.scale is None else query * self.scale
            scores = q @ key.transpose(-1, -2)
            return self._attend(scores, value, _score_mask(scores, value_mask, self.causal))
        if self.concat_score_weight is None:
            # (scale q) k^T = scale (q k^T): the learned scale rides on the query. One head
            # axis is added (views) since exporters take the fused op on 4-D tensors only.
            q = query if self.scale is None else query * self.scale
            out = F.scaled_dot_product_attention(
                q.unsqueeze(1),
                key.unsqueeze(1),
                value.unsqueeze(1),
                dropout_p=self.dropout if self.training else 0.0,
                is_causal=self.causal,
                scale=1.0,
            )
            return out.squeeze(1)
        pairs = query.unsqueeze(-2) + key.unsqueeze(-3)  # (N, Tq, Tv, d)
        if self.scale is not None:
            pairs = pairs * self.scale
        scores = self.concat_score_weight * torch.tanh(pairs).sum(dim=-1)
        return self._attend(scores, value, _score_mask(scores, value_mask, self.causal))


class AdditiveAttentionModule(_ScoredAttention):
    """Keras' AdditiveAttention: scores sum(scale * tanh(q_i + k_j)) over the features, with a
    learned `scale` of one value per feature (use_scale) or none."""

    def __init__(self, dim: int, use_scale: bool, dropout: float, causal: bool) -> None:
        super().__init__(dropout, causal)
        self.scale = nn.Parameter(torch.empty(dim)) if use_scale else None

    def forward(
        self,
        query: torch.Tensor,
        value: torch.Tensor,
        key: torch.Tensor | None = None,
        mask: list | None = None,
    ) -> torch.Tensor:
        key = value if key is None else key
        terms = torch.tanh(query.unsqueeze(-2) + key.unsqueeze(-3))  # (N, Tq, Tv, d)
        if self.scale is not None:
            terms = terms * self.scale
        scores = terms.sum(dim=-1)
        value_mask = mask[1] if mask is not None else None
        out = self._attend(scores, value, _score_mask(scores, value_mask, self.causal))
        return _zero_masked_queries(out, mask)


def _zero_masked_queries(out: torch.Tensor, mask: list | None) -> torch.Tensor:
    """Keras' Attention: the output is zero at the query's masked steps."""
    if mask is None or mask[0] is None:
        return out
    return torch.where(mask[0].unsqueeze(-1), out, 0.0)
