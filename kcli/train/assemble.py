"""Assemble a Trainer from a prepared run: batches, optimizer, step functions, callbacks."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kcli.fit.progress import Progress
from kcli.fit.steps import Stepper
from kcli.fit.trainer import Trainer
from kcli.train.setup import Prepared

# Validation and test batches carry no gradients, so they can be larger than training ones.
EVAL_BATCH_FACTOR = 4


def make_batches(prepared: Prepared, split: Any, *, train: bool, rank: int = 0, world: int = 1):
    """Device-resident batches for a split (or a stream for a generator source)."""
    from kcli.data.batches import InMemoryBatches, StreamBatches
    from kcli.data.splits import StreamSplit

    fit = prepared.loaded.recipe.fit
    if isinstance(split, StreamSplit):
        return StreamBatches(
            split, prepared.device, y_dtype=prepared.y_dtype, rank=rank, world_size=world
        )
    if train:
        return InMemoryBatches(
            split.x,
            split.y,
            prepared.train_weights,
            batch_size=fit.batch_size,
            shuffle=fit.shuffle,
            seed=prepared.loaded.recipe.seed,
            device=prepared.device,
            rank=rank,
            world_size=world,
            y_dtype=prepared.y_dtype,
        )
    if world > 1:
        split = shard_for_evaluation(split, rank, world)
    return InMemoryBatches(
        split.x,
        split.y,
        split.sample_weight,
        batch_size=fit.validation_batch_size or fit.batch_size * EVAL_BATCH_FACTOR,
        shuffle=False,
        device=prepared.device,
        y_dtype=prepared.y_dtype,
    )


def shard_for_evaluation(split: Any, rank: int, world: int) -> Any:
    """Rank r's contiguous part of a validation/test split: every sample counted exactly once
    (the parts may differ by one sample; evaluation needs no lock-step between ranks)."""
    import numpy as np

    from kcli.data.splits import ArraySplit

    n = len(split)
    bounds = np.linspace(0, n, world + 1).round().astype(int)
    part = slice(bounds[rank], bounds[rank + 1])

    def rows(values: Any) -> Any:  # an array, or a mapping (inputs, targets by output)
        if values is None:
            return None
        return {k: v[part] for k, v in values.items()} if isinstance(values, dict) else values[part]

    return ArraySplit(rows(split.x), rows(split.y), rows(split.sample_weight))


def make_callbacks(prepared: Prepared) -> list:
    """The recipe's callbacks, plus a ModelCheckpoint writing best.pt if none does."""
    from kcli.fit.callbacks import callback_registry

    specs = list(prepared.loaded.recipe.fit.callbacks)
    writes_best = any(spec.type == "ModelCheckpoint" for spec in specs)
    if not writes_best:
        monitor = "val_loss" if prepared.splits.validation is not None else "loss"
        specs.append(callback_registry.get("ModelCheckpoint").model_validate({"monitor": monitor}))
    return [spec.build() for spec in specs]


def make_trainer(
    prepared: Prepared,
    run_dir: Path,
    options: Any,
    write_row: Callable[[dict[str, float]], None],
    sync_rows: Callable[[], None] | None = None,
) -> Trainer:
    context = prepared.dist
    rank, world = (context.rank, context.world_size) if context is not None else (0, 1)
    recipe = prepared.loaded.recipe
    model = prepared.model
    optimizer = recipe.compile.optimizer.build([p for p in model.parameters() if p.requires_grad])
    stepper = Stepper(model, prepared.objectives, optimizer, prepared.device, recipe.fit.precision)
    if context is not None:
        cuda = prepared.device.type == "cuda"
        stepper.distribute([prepared.device.index] if cuda else None)
    if recipe.fit.compile:
        stepper.compile()
    stream = sys.stderr if options.json else sys.stdout
    verbose = recipe.fit.verbose
    progress = Progress(
        recipe.fit.epochs,
        stream=stream,
        quiet=options.quiet or rank != 0 or verbose == 0,
        live={1: None, 2: False}.get(verbose),  # 2: one line per epoch even on a terminal
    )
    splits = prepared.splits
    trainer = Trainer(
        model=model,
        stepper=stepper,
        train_batches=make_batches(prepared, splits.train, train=True, rank=rank, world=world),
        val_batches=(
            make_batches(prepared, splits.validation, train=False, rank=rank, world=world)
            if splits.validation is not None
            else None
        ),
        metric_specs=prepared.metric_specs,
        callbacks=make_callbacks(prepared),
        run_dir=run_dir,
        epochs=recipe.fit.epochs,
        progress=progress,
        write_row=write_row,
        sync_rows=sync_rows,
        dist=context,
        has_penalty=model.has_weight_penalty
        or any(node.spec.activity_regularizer is not None for node in prepared.plan.nodes),
        steps_per_epoch=recipe.fit.steps_per_epoch,
        validation_steps=recipe.fit.validation_steps,
        validates_after=recipe.fit.validates_after,
        initial_epoch=recipe.fit.initial_epoch,
    )
    trainer.epochs_done = recipe.fit.initial_epoch  # a resume replaces it with its own count
    trainer.batches_for = lambda split: make_batches(
        prepared, split, train=False, rank=rank, world=world
    )
    return trainer
