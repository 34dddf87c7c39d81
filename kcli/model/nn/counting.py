"""Parameter counts in Keras' terms."""

from __future__ import annotations

from torch import nn


def count_weights(module: nn.Module) -> tuple[int, int]:
    """(trainable, non_trainable) weight counts of a module, as Keras counts them.

    Trainable: parameters that require grad. Non-trainable: frozen parameters plus every
    persistent floating-point buffer (BatchNormalization's moving mean and variance). A
    non-persistent buffer (a constant a module keeps for its own use) is not a weight.
    """
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    parameter_names = {name for name, _ in module.named_parameters()}
    buffers = sum(
        tensor.numel()
        for name, tensor in module.state_dict().items()
        if name not in parameter_names and tensor.is_floating_point()
    )
    return trainable, frozen + buffers
