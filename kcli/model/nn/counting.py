"""Parameter counts in Keras' terms."""

from __future__ import annotations

from torch import nn

from kcli.errors import KcliError


def count_weights(module: nn.Module) -> tuple[int, int]:
    """(trainable, non_trainable) weight counts of a module, as Keras counts them.

    Trainable: parameters that require grad. Non-trainable: frozen parameters plus the
    persistent buffers that are Keras weights: every floating-point one (BatchNormalization's
    moving mean and variance), unless the buffer's module names its weights itself in
    `keras_weight_buffers` (Normalization's mean, variance and int32 count are; Discretization's
    learned boundaries are not). A non-persistent buffer (a constant a module keeps for its own
    use) is not a weight.
    """
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    return trainable, frozen + _buffer_weights(module)


def _buffer_weights(module: nn.Module) -> int:
    # Walks the modules as state_dict does (a module registered twice is counted twice there).
    total = 0
    for _, sub in module.named_modules(remove_duplicate=False):
        named = getattr(sub, "keras_weight_buffers", None)
        for name, tensor in sub._buffers.items():
            if tensor is None or name in sub._non_persistent_buffers_set:
                continue
            if (name in named) if named is not None else tensor.is_floating_point():
                total += tensor.numel()
    return total


def planned_weight_counts(plan, counted: set[str] | None = None) -> dict[str, int]:
    """Layer name -> its weight count, without allocating any weight (see `check_model_size`).

    Each layer's module is built on torch's meta device: tensors with shapes and no storage, so
    a layer of 10^12 weights costs nothing to count. A Model call counts its sub-model's weights
    (with those of the sub-models it calls) the first time the sub-model is met, in `counted`.
    """
    import torch

    counted = set() if counted is None else counted
    counts = {}
    with torch.device("meta"):
        for node in plan.nodes:
            if node.shares:  # a Shared call's weights are its shared layer's: count them once
                counts[node.name] = 0
                continue
            if node.submodel is not None:
                model = node.spec.model
                first = model not in counted
                counted.add(model)
                inner = planned_weight_counts(node.submodel, counted) if first else {}
                counts[node.name] = sum(inner.values())
                continue
            try:
                module = node.spec.build([tuple(s) for s in node.input_shapes])
            except (TypeError, ValueError, RuntimeError, OverflowError) as error:
                # torch refuses the sizes themselves (e.g. a dimension past 2**63)
                reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise KcliError(
                    f"layer '{node.name}' cannot be built with these sizes ({reason})",
                    loc=node.loc,
                ) from None
            counts[node.name] = sum(count_weights(module))
    return counts
