"""The three contenders, each training a Case for some epochs and returning per-epoch seconds.

- `KcliRunner`: kcli's own loop through its Python API (load_recipe -> prepare -> make_trainer
  -> Trainer.fit), in a temp run folder, with everything a `kcli train` epoch does (metrics.csv
  row, checkpoints/last.pt and best.pt, the default ModelCheckpoint), progress quiet.
- `HandRunner`: the loop a careful engineer writes by hand: tensors made once, a
  `torch.randperm` per epoch, index-slicing batches, logits + F.cross_entropy,
  `torch.optim.Adam(eps=1e-7)` (Keras' epsilon; torch's own implementation, default
  foreach choice), loss and accuracy summed on the device and read once per epoch, a validation
  pass per epoch under no_grad at 4x the batch size (kcli's validation batch).
- `KerasRunner`: Keras 3 `fit` with KERAS_BACKEND=torch, validation_data, verbose=0.

Epoch time is wall time from one epoch's start to the next one's (the last: to the end of fit),
so per-epoch work done after the epoch's logs (kcli's checkpoints) is counted.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from cases import Case
from torch import nn


class EpochClock:
    """Wall-clock epoch boundaries: `tick()` at each epoch start and once at the end."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    def tick(self) -> None:
        self.marks.append(time.perf_counter())

    def epochs(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]


# ---- kcli ------------------------------------------------------------------------------------
class KcliRunner:
    """kcli's Trainer on a recipe written for the case (arrays saved once as .npz)."""

    name = "kcli"

    def __init__(self, case: Case, workdir: Path, **fit: Any) -> None:
        self.case, self.workdir, self.fit = case, Path(workdir), fit
        tag = "_".join(f"{k}-{v}" for k, v in sorted(fit.items())) or "default"
        folder = self.workdir / f"{case.name}_{len(case.x)}"
        folder.mkdir(parents=True, exist_ok=True)
        data, val = folder / "train.npz", folder / "val.npz"
        if not data.exists():
            np.savez(data, x=case.x, y=case.y)
            np.savez(val, x=case.x_val, y=case.y_val)
        self.recipe_path = folder / f"recipe_{tag}.yaml"
        recipe = case.recipe(str(data), str(val), **fit)
        self.recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))

    def make_trainer(self, epochs: int):
        """A fresh Trainer (new model, new run folder) exactly as `kcli train` assembles it."""
        from kcli import runs
        from kcli.recipe.load import load_recipe
        from kcli.train.assemble import make_trainer
        from kcli.train.session import TrainOptions
        from kcli.train.setup import prepare

        loaded = load_recipe(self.recipe_path, [f"fit.epochs={epochs}"])
        prepared = prepare(loaded, "cpu")
        run_dir = runs.create_run_dir(self.workdir / "runs", loaded.name)
        log = runs.MetricsLog(run_dir / "metrics.csv")
        options = TrainOptions(runs_dir=self.workdir / "runs", quiet=True, argv=["bench"])
        return make_trainer(prepared, run_dir, options, log.append, log.sync)

    def train(self, epochs: int) -> list[float]:
        from kcli.fit.callbacks import Callback

        trainer = self.make_trainer(epochs)
        clock = EpochClock()

        class Clock(Callback):
            def on_epoch_begin(self, epoch: int) -> None:
                clock.tick()

            def on_train_end(self, logs: dict[str, float]) -> None:
                clock.tick()

        timer = Clock()
        timer.set_trainer(trainer)
        trainer.callbacks.insert(0, timer)  # first: its tick starts the epoch before the others
        trainer.fit()
        return clock.epochs()


# ---- hand-written torch ----------------------------------------------------------------------
class LastState(nn.Module):
    """nn.LSTM returning the last step's hidden state (Keras' return_sequences=False)."""

    def __init__(self, features: int, units: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, units, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[1][0][-1]


class SelfAttention(nn.Module):
    """Multi-head self-attention as one writes it by hand: q, k, v and output nn.Linear, the
    heads split with views, F.scaled_dot_product_attention (torch's fused kernels)."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(d_model, d_model) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = (
            proj(x).view(n, t, self.heads, d // self.heads).transpose(1, 2)
            for proj in (self.q, self.k, self.v)
        )
        context = F.scaled_dot_product_attention(q, k, v)
        return self.out(context.transpose(1, 2).reshape(n, t, d))


class EncoderBlock(nn.Module):
    """Post-norm transformer block: x + attention, LayerNorm, + feed-forward, LayerNorm (Keras'
    LayerNormalization epsilon 1e-3)."""

    def __init__(self, d_model: int, heads: int, ff: int) -> None:
        super().__init__()
        self.attention = SelfAttention(d_model, heads)
        self.norm1 = nn.LayerNorm(d_model, eps=1e-3)
        self.ff = nn.Sequential(nn.Linear(d_model, ff), nn.ReLU(), nn.Linear(ff, d_model))
        self.norm2 = nn.LayerNorm(d_model, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attention(x))
        return self.norm2(x + self.ff(x))


class Encoder(nn.Module):
    """Embedding, the blocks, the mean over the steps, logits."""

    def __init__(
        self, vocab: int, d_model: int, heads: int, ff: int, blocks: int, n_classes: int
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.blocks = nn.Sequential(*(EncoderBlock(d_model, heads, ff) for _ in range(blocks)))
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.embed(ids)).mean(dim=1))


def hand_model(case: Case) -> nn.Module:
    """The case's architecture written with torch.nn (NCHW for images, logits out)."""
    if case.name == "transformer":
        return Encoder(**case.sizes, n_classes=case.n_classes)
    modules: list[nn.Module] = []
    shape = list(case.input_shape)
    if len(shape) == 3:  # images: torch's usual layout, converted once with the arrays
        shape = [shape[2], shape[0], shape[1]]
    for layer in case.layers:
        kind = layer["type"]
        if kind == "Dense":
            modules.append(nn.Linear(shape[-1], layer["units"]))
            shape = [layer["units"]]
        elif kind == "Conv2D":
            k = layer["kernel_size"]
            modules.append(nn.Conv2d(shape[0], layer["filters"], k))
            shape = [layer["filters"], shape[1] - k + 1, shape[2] - k + 1]
        elif kind == "MaxPooling2D":
            p = layer["pool_size"]
            modules.append(nn.MaxPool2d(p))
            shape = [shape[0], shape[1] // p, shape[2] // p]
        elif kind == "Flatten":
            modules.append(nn.Flatten())
            shape = [int(np.prod(shape))]
        elif kind == "LSTM":
            modules.append(LastState(shape[-1], layer["units"]))
            shape = [layer["units"]]
        else:
            raise ValueError(f"no hand-written form for {kind}")
        if layer.get("activation") == "relu":
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)  # the last softmax is folded into F.cross_entropy


class HandRunner:
    """A hand-written PyTorch loop doing the same work as kcli's (see the module doc)."""

    name = "hand"

    def __init__(self, case: Case) -> None:
        self.case = case

        def tensor(a: np.ndarray) -> torch.Tensor:
            if a.ndim == 4:
                a = a.transpose(0, 3, 1, 2)
            return torch.from_numpy(np.ascontiguousarray(a))

        self.x, self.y = tensor(case.x), tensor(case.y)
        self.x_val, self.y_val = tensor(case.x_val), tensor(case.y_val)

    def train(self, epochs: int) -> list[float]:
        model = hand_model(self.case)
        opt = torch.optim.Adam(model.parameters(), lr=self.case.learning_rate, eps=1e-7)
        x, y, n, b = self.x, self.y, len(self.x), self.case.batch_size
        clock = EpochClock()
        for _ in range(epochs):
            clock.tick()
            model.train()
            loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
            order = torch.randperm(n)
            for i in range(0, n, b):
                idx = order[i : i + b]
                xb, yb = x[idx], y[idx]
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.detach() * len(yb)
                correct += (logits.detach().argmax(1) == yb).sum()
            val = self.validate(model)
            self.last_logs = {"loss": float(loss_sum) / n, "accuracy": float(correct) / n, **val}
        clock.tick()
        return clock.epochs()

    @torch.no_grad()
    def validate(self, model: nn.Module) -> dict[str, float]:
        model.eval()
        n, b = len(self.x_val), self.case.batch_size * 4
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        for i in range(0, n, b):
            xb, yb = self.x_val[i : i + b], self.y_val[i : i + b]
            logits = model(xb)
            loss_sum += F.cross_entropy(logits, yb, reduction="sum")
            correct += (logits.argmax(1) == yb).sum()
        return {"val_loss": float(loss_sum) / n, "val_accuracy": float(correct) / n}


# ---- Keras 3 ---------------------------------------------------------------------------------
def keras_available() -> bool:
    try:
        import keras  # noqa: F401
    except Exception:  # not installed, or a backend that cannot load
        return False
    return keras.backend.backend() == "torch"


class KerasRunner:
    """Keras 3 `fit` on the torch backend (KERAS_BACKEND=torch set before keras is imported)."""

    name = "keras"

    def __init__(self, case: Case) -> None:
        self.case = case

    def model(self):
        import keras

        if any("inputs" in layer for layer in self.case.layers):
            model = self.functional()
        else:
            layers = [keras.Input(tuple(self.case.input_shape))]
            for layer in self.case.layers:
                args = {k: v for k, v in layer.items() if k != "type"}
                layers.append(getattr(keras.layers, layer["type"])(**args))
            model = keras.Sequential(layers)
        model.compile(
            optimizer=keras.optimizers.Adam(self.case.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def functional(self):
        """The recipe's graph as a Keras functional model: each layer called on the layers its
        `inputs` names (default: the one before), MultiHeadAttention on (x, x)."""
        import keras

        dtype = "int64" if self.case.x.dtype.kind in "iu" else "float32"
        inp = keras.Input(tuple(self.case.input_shape), dtype=dtype)
        outputs, previous = {"input": inp}, inp
        for layer in self.case.layers:
            args = {k: v for k, v in layer.items() if k not in ("type", "inputs")}
            keras_layer = getattr(keras.layers, layer["type"])(**args)
            sources = layer.get("inputs")
            if sources is None:
                previous = keras_layer(previous)
            elif isinstance(sources, str) and layer["type"] == "MultiHeadAttention":
                previous = keras_layer(outputs[sources], outputs[sources])  # self-attention
            elif isinstance(sources, str):
                previous = keras_layer(outputs[sources])
            else:
                previous = keras_layer([outputs[name] for name in sources])
            outputs[layer["name"]] = previous
        return keras.Model(inp, previous)

    def train(self, epochs: int) -> list[float]:
        import keras

        clock = EpochClock()

        class Clock(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                clock.tick()

            def on_train_end(self, logs=None):
                clock.tick()

        model, c = self.model(), self.case
        model.fit(
            c.x,
            c.y,
            batch_size=c.batch_size,
            epochs=epochs,
            verbose=0,
            callbacks=[Clock()],
            validation_data=(c.x_val, c.y_val),
        )
        return clock.epochs()


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="kcli-bench-"))
