"""Adapt the model's preprocessing layers on the train split, before training (Keras' `adapt`).

Every module that learns from data (kcli.model.nn.adaptable.AdaptableModule with `adapts`) is
adapted in the order the model runs them: its inputs are the values the layers before it make
in inference mode (no dropout, no augmentation; the layers adapted earlier already hold their
statistics), computed batch by batch over the train split only, never validation or test. An
in-memory split is read in ADAPT_BATCH samples at a time, a generator's in its own batches, once
(a fresh pass, which leaves training's stream untouched). What is learned lives in buffers,
saved with the weights, so nothing is adapted again when the run is evaluated or exported.

Distributed training: every rank loads the same whole train split before it is sharded into
batches (kcli.train.assemble.make_batches), so every rank adapts to the same statistics.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from kcli.errors import KcliError
from kcli.model.nn.adaptable import AdaptableModule

ADAPT_BATCH = 1024  # samples per forward pass when the train split is in memory


class _Reached(Exception):  # noqa: N818 - control flow, not an error: stops the forward pass
    """Raised by the hook on the layer being adapted, carrying its input, to skip the rest."""

    def __init__(self, module: torch.nn.Module, value: torch.Tensor) -> None:
        super().__init__()
        self.module, self.value = module, value


def adapt_layers(built: Any, train: Any, loaded: Any = None) -> list[str]:
    """Adapt every adaptable layer of `built.model` on the `train` split; their names, in order.

    A layer the data cannot adapt (too few values for its bins ...) is a KcliError naming it,
    located in the recipe when `loaded` is given.
    """
    model = built.model
    pending = {
        module: name
        for name, module in model.named_modules()
        if isinstance(module, AdaptableModule) and module.adapts
    }
    done: list[str] = []
    was_training = model.training
    model.eval()
    try:
        while pending:
            module = _first_reached(model, pending, train)
            if module is None:  # never called by the forward pass (an empty split)
                break
            name = pending.pop(module)
            _adapt_one(model, module, name, train, built.plan, loaded)
            done.append(name)
    finally:
        model.train(was_training)
    return done


def _first_reached(model: torch.nn.Module, pending: dict, train: Any) -> AdaptableModule | None:
    """Which pending module a forward pass reaches first, on the split's first batch."""
    for x in _batches(train):
        reached = _run_until(model, list(pending), x)
        return None if reached is None else reached.module
    return None


def _adapt_one(model, module: AdaptableModule, name: str, train, plan, loaded) -> None:
    module.reset_state()
    for x in _batches(train):
        reached = _run_until(model, [module], x)
        if reached is not None:
            module.update_state(reached.value)
    try:
        module.finalize_state()
    except ValueError as error:
        layer = name.rsplit(".", 1)[-1]
        node = next((n for n in plan.nodes if n.name == name), None)
        problem = KcliError(
            f"layer '{layer}' cannot be adapted on the train split: {error}",
            loc=node.loc if node is not None else None,
        )
        if loaded is None:
            raise problem from None
        from kcli.recipe.load import locate

        raise locate(problem, loaded) from None


def _run_until(model: torch.nn.Module, modules: list, x: Any) -> _Reached | None:
    """Run the model on `x` until one of `modules` is called; its input (None if none was)."""

    def stop(module: torch.nn.Module, args: tuple) -> None:
        raise _Reached(module, args[0].detach())

    hooks = [module.register_forward_pre_hook(stop) for module in modules]
    try:
        with torch.no_grad():
            model(x)
    except _Reached as reached:
        return reached
    finally:
        for hook in hooks:
            hook.remove()
    return None


def _batches(train: Any) -> Iterator[Any]:
    """The train split's model inputs, batch by batch, as CPU tensors (a dict for several)."""
    from kcli.data.splits import ArraySplit, StreamSplit

    if isinstance(train, ArraySplit):
        for start in range(0, len(train), ADAPT_BATCH):
            yield _tensors(train.x, slice(start, start + ADAPT_BATCH))
        return
    if isinstance(train, StreamSplit):
        fresh = StreamSplit(train.source, train.preprocessing)  # training's iterator untouched
        for x, _, _ in fresh.epoch():
            yield _tensors(x, slice(None))
        return
    raise TypeError(f"cannot adapt on a {type(train).__name__}")


def _tensors(x: Any, rows: slice) -> Any:
    if isinstance(x, dict):
        return {name: torch.as_tensor(values[rows]) for name, values in x.items()}
    return torch.as_tensor(x[rows])
