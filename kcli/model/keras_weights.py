"""A GraphModel's weights as Keras holds them: per Keras layer, in `get_weights()` order and layout.

The key of a layer is its name; a sub-model's layer is `<sub-model>/<layer>` (Keras forbids `/`
in names, so it cannot clash), whichever layers call the sub-model, as kcli keeps one set of
weights per sub-model (`encoder.dense.kernel` in the state dict). Each layer's weights are
rearranged by kcli.model.nn.keras_layout, and listed in Keras' order: the module's state-dict
order (parameters, then buffers such as BatchNormalization's moving statistics, then the
wrapped layers' in Keras' order), except where Keras tracks a weight elsewhere (below).

    weights = keras_weights_of(model)         # {"dense": [kernel (in, out), bias], ...}
    skipped = load_keras_weights(model, weights, strict=False)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import torch
from torch import nn

from kcli.errors import KcliError, Problem
from kcli.model.nn.keras_layout import keras_tensor, torch_tensor
from kcli.model.nn.model import NestedModel
from kcli.model.nn.wrappers import SpectralNormModule

KerasWeights = dict[str, list[np.ndarray]]


def layer_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(Keras key, module) of every layer module that holds weights, in the model's order."""
    for name, module in model.named_children():
        if isinstance(module, NestedModel):  # registered once, at the top, whoever calls it
            for inner, layer in module.named_children():
                if layer.state_dict():
                    yield f"{name}/{inner}", layer
        elif module.state_dict():
            yield name, module


def keras_order(module: nn.Module) -> list[str]:
    """The module's state-dict keys in the order of Keras' `get_weights()` for the layer."""
    keys = list(module.state_dict())
    for path, sub in module.named_modules():
        if isinstance(sub, SpectralNormModule):
            # Keras' wrapper tracks the kernel it normalizes as its own first weight, before
            # vector_u; the wrapped layer's other weights follow.
            prefix = f"{path}." if path else ""
            kernel = f"{prefix}layer.{sub.weight}"
            keys.remove(kernel)
            keys.insert(keys.index(f"{prefix}vector_u"), kernel)
    return keys


def _stored(module: nn.Module, key: str) -> tuple[nn.Module, str, torch.Tensor]:
    path, _, name = key.rpartition(".")
    owner = module.get_submodule(path)
    return owner, name, module.state_dict(keep_vars=True)[key]


def module_keras_weights(module: nn.Module) -> list[np.ndarray]:
    """One layer module's weights as Keras' `layer.get_weights()` returns them."""
    arrays = []
    with torch.no_grad():
        for weight in keras_order(module):
            owner, name, tensor = _stored(module, weight)
            arrays.append(keras_tensor(owner, name, tensor).detach().cpu().numpy().copy())
    return arrays


def keras_weights_of(model: nn.Module) -> KerasWeights:
    """Every layer's weights, as numpy arrays in Keras' layout and `get_weights()` order."""
    return {key: module_keras_weights(module) for key, module in layer_modules(model)}


def _layer_differences(
    key: str, module: nn.Module, arrays: list[np.ndarray]
) -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    """(the (state-dict key, array) pairs that fit, what does not fit) for one layer."""
    order = keras_order(module)
    if len(arrays) != len(order):
        return [], [f"{key}: {len(arrays)} weights in the file, the model's layer has {len(order)}"]
    fits, problems = [], []
    for weight, array in zip(order, arrays, strict=True):
        owner, name, tensor = _stored(module, weight)
        want = tuple(keras_tensor(owner, name, tensor).shape)
        if tuple(array.shape) != want:
            problems.append(
                f"{key}.{weight}: shape {tuple(array.shape)} in the file, the model's is {want}"
            )
        else:
            fits.append((weight, array))
    return fits, problems


def load_keras_weights(
    model: nn.Module, weights: Mapping[str, list], strict: bool = True
) -> list[str]:
    """Copy Keras-layout weights (`keras_weights_of`'s form) into `model`; the list of what was
    skipped, one line each. `strict`: every layer of the model present with the right number
    and shapes of weights and nothing else in `weights`, else a KcliError listing each
    difference (and nothing is copied). Layers without weights (empty lists) are ignored."""
    modules = dict(layer_modules(model))
    given = {key: list(arrays) for key, arrays in weights.items() if len(arrays)}
    problems = [f"{key}: in the file, not in the model" for key in given if key not in modules]
    problems += [f"{key}: in the model, not in the file" for key in modules if key not in given]
    planned = []
    for key, module in modules.items():
        if key in given:
            fits, differences = _layer_differences(key, module, given[key])
            problems += differences
            planned += [(module, weight, array) for weight, array in fits]
    if strict and problems:
        raise KcliError([Problem(f"the weights do not fit the model: {p}") for p in problems])
    with torch.no_grad():
        for module, weight, array in planned:
            owner, name, tensor = _stored(module, weight)
            value = torch_tensor(owner, name, torch.as_tensor(np.ascontiguousarray(array)))
            tensor.copy_(value.to(dtype=tensor.dtype, device=tensor.device))
    return problems
