"""Keras' layout of kcli's weights: how a module's tensor is rearranged into the weight Keras keeps.

kcli stores some weights in torch's layout so that no step has to transpose them: Dense and
recurrent kernels as (out, in) for F.linear (Keras: (in, out)), conv kernels as (out, in, *window)
and the transposed conv's as (in, out, *window) (Keras: (*window, in, out) and (*window, out, in)),
ConvLSTM kernels as (4*filters, in, *window) (Keras: (*window, in, 4*filters)),
depthwise kernels as torch's grouped (C*dm, 1, *k) (Keras: (*k, C, dm)), and the GRU's
gates in torch's order r, z, n (Keras: z, r, h). This module is the one place in kcli that says
how each is rearranged into Keras' layout, per module class and weight (the parity tests keep
their own mapping, checked against Keras itself, which these agree with). Every weight not
listed (biases, BatchNormalization's, Embedding's, PReLU's, a plugin's own) is kept in Keras'
layout already.

    keras_tensor(module, "kernel", module.kernel)  # the value Keras would hold
    torch_tensor(module, "kernel", keras_value)  # the inverse: Keras' value as kcli stores it
    planned_layouts(plan)  # {"dense.kernel": ((16, 6), (6, 16)), ...}, no weight allocated
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from kcli.model.nn.conv import (
    ConvND,
    ConvTransposeND,
    DepthwiseConvModule,
    SeparableConvModule,
)
from kcli.model.nn.conv_recurrent import ConvLSTMModule
from kcli.model.nn.core import DenseModule
from kcli.model.nn.recurrent import GRUModule, RecurrentModule

Shape = tuple[int, ...]
Rearrange = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def _transposed(module: nn.Module, t: torch.Tensor) -> torch.Tensor:
    return t.T


def _window_first(module: nn.Module, t: torch.Tensor) -> torch.Tensor:
    # Both channel axes move behind the window in reverse order: (out, in, *k) -> (*k, in, out)
    # for a conv, (in, out, *k) -> (*k, out, in) for a transposed conv, as Keras keeps them.
    return t.permute(*range(2, t.dim()), 1, 0)


def _depthwise(module: nn.Module, t: torch.Tensor) -> torch.Tensor:
    # Output channel c*dm + m comes from input channel c (`groups` is C), which is the order
    # Keras' (*k, C, dm) flattens its last two axes in.
    out, _, *window = t.shape
    split = t.reshape(module.groups, out // module.groups, *window)
    return split.permute(*range(2, split.dim()), 0, 1)


def _gru_gates(t: torch.Tensor, units: int, dim: int) -> torch.Tensor:
    r, z, n = t.split(units, dim=dim)
    return torch.cat([z, r, n], dim=dim)


def _gru_kernel(module: nn.Module, t: torch.Tensor) -> torch.Tensor:
    return _gru_gates(t, module.units, 0).T


def _gru_bias(module: nn.Module, t: torch.Tensor) -> torch.Tensor:
    return _gru_gates(t, module.units, -1)  # (3u,), or (2, 3u) with reset_after: rows as Keras


# Looked up along each module's class hierarchy: RecurrentModule covers SimpleRNN and LSTM, whose
# gate order (i, f, c, o) is Keras' too; GRUModule, listed itself, reorders its gates.
KERAS_LAYOUTS: dict[type[nn.Module], dict[str, Rearrange]] = {
    DenseModule: {"kernel": _transposed},
    ConvND: {"kernel": _window_first},
    ConvTransposeND: {"kernel": _window_first},
    DepthwiseConvModule: {"depthwise_kernel": _depthwise},
    SeparableConvModule: {"depthwise_kernel": _depthwise, "pointwise_kernel": _window_first},
    RecurrentModule: {"kernel": _transposed, "recurrent_kernel": _transposed},
    ConvLSTMModule: {"kernel": _window_first, "recurrent_kernel": _window_first},
    GRUModule: {"kernel": _gru_kernel, "recurrent_kernel": _gru_kernel, "bias": _gru_bias},
}


def keras_tensor(module: nn.Module, name: str, tensor: torch.Tensor) -> torch.Tensor:
    """`module`'s weight `name` (holding `tensor`) as Keras keeps it: the same values, in
    Keras' layout (a view or a rearranged copy; `tensor` itself when the layouts agree)."""
    for cls in type(module).__mro__:
        if cls in KERAS_LAYOUTS:
            rearrange = KERAS_LAYOUTS[cls].get(name)
            return tensor if rearrange is None else rearrange(module, tensor)
    return tensor


def torch_tensor(module: nn.Module, name: str, value: torch.Tensor) -> torch.Tensor:
    """The inverse of `keras_tensor`: `value`, in Keras' layout, as `module` stores its weight
    `name` (a new tensor with the stored weight's shape, `value`'s dtype).

    Each rearrangement is a permutation of entries, so it is inverted by sending the stored
    weight's entry numbers through it: that says where each of Keras' entries comes from,
    without a hand-written inverse per layout that could drift from the forward one.
    """
    stored = module.get_parameter(name) if name in module._parameters else module.get_buffer(name)
    numbers = torch.arange(stored.numel()).reshape(stored.shape)
    where = keras_tensor(module, name, numbers)
    if tuple(where.shape) != tuple(value.shape):
        raise ValueError(f"{name}: Keras' shape is {tuple(where.shape)}, not {tuple(value.shape)}")
    out = torch.empty(stored.numel(), dtype=value.dtype)
    out[where.reshape(-1)] = value.reshape(-1)
    return out.reshape(stored.shape)


def keras_layouts(model: nn.Module) -> dict[str, tuple[Shape, Shape]]:
    """State-dict key -> (its shape in the state dict, the shape Keras gives that weight)."""
    layouts = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        path, _, name = key.rpartition(".")
        shown = keras_tensor(model.get_submodule(path), name, tensor)
        layouts[key] = (tuple(tensor.shape), tuple(shown.shape))
    return layouts


def planned_layouts(plan) -> dict[str, tuple[Shape, Shape]]:
    """`keras_layouts` of every layer of a GraphPlan, keyed as the GraphModel's state dict
    (`<layer>.<weight>`). Each module is built on the meta device: shapes, no storage, no
    weights drawn (the global generator is left as it was)."""
    layouts = {}
    graphs = [("", plan), *((f"{name}.", sub) for name, sub in plan.models.items())]
    with torch.device("meta"):
        for prefix, graph in graphs:  # a sub-model's weights: `<sub-model>.<layer>.<weight>`
            for node in graph.nodes:
                if node.shares or node.submodel:  # the shared layer's, the sub-model's weights
                    continue
                module = node.spec.build([tuple(s) for s in node.input_shapes])
                for key, shapes in keras_layouts(module).items():
                    layouts[f"{prefix}{node.name}.{key}"] = shapes
    return layouts
