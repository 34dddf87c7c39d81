"""What `kcli predict` hands back, and how a model's outputs become what it writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kcli.use.confusion import binary_threshold, is_classifier


@dataclass
class Prediction:
    """What `kcli predict` wrote."""

    run_dir: Path
    input: Path
    output: Path
    n_samples: int
    what: str  # class indices | class names | probabilities | values
    shape: tuple[int, ...]  # per sample
    note: str | None = None  # how the input was read, when not the obvious way

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "input": str(self.input),
            "output": str(self.output),
            "n_samples": self.n_samples,
            "what": self.what,
            "shape": list(self.shape),
            "note": self.note,
        }


def to_tensors(x: Any, device: Any) -> Any:
    import torch

    def tensor(values: np.ndarray):
        values = np.ascontiguousarray(values)
        if not values.flags.writeable:  # a memory-mapped input: torch wants writable memory
            values = values.copy()
        return torch.from_numpy(values).to(device)

    if isinstance(x, dict):
        return {name: tensor(v) for name, v in x.items()}
    return tensor(x)


def decision(loss: Any, proba: bool):
    """outputs -> what is written: values, probabilities, or class indices."""
    if proba or not is_classifier(loss):
        return lambda out: out
    threshold = binary_threshold(loss)

    def classes(out: np.ndarray) -> np.ndarray:
        if out.shape[-1] == 1:
            return (out[..., 0] > threshold).astype(np.int64)
        return out.argmax(axis=-1).astype(np.int64)

    return classes


def model_outputs(run_model: Any, reader: Any, input_path: Path, size: int):
    """The run's model over the input, `size` samples at a time: its output(s) per batch (one
    tensor, or a tuple for several outputs), the raw features put through preprocess.json."""
    import torch

    from kcli.errors import KcliError
    from kcli.use.evaluate import unlocated

    model, device = run_model.model, next(run_model.model.parameters()).device
    for start, raw in reader.batches(size):
        try:
            x = run_model.preprocessing.transform_x(
                raw, str(input_path), (), lambda i, s=start: reader.label(s + i)
            )
        except KcliError as error:
            raise unlocated(error) from None
        with torch.no_grad():
            yield model(to_tensors(x, device))
