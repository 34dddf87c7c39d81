"""The `fit:` section (Keras' model.fit arguments, and how to run them). Torch-free."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from kcli.fit.callbacks import CallbackRef
from kcli.registry import Spec

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class FitSpec(Spec):
    """Keras' model.fit arguments, and how to run them (device, precision, compile)."""

    epochs: int = Field(1, ge=1, description="Epochs to train (Keras' default: 1).")
    batch_size: int = Field(32, ge=1, description="Samples per step, per process.")
    validation_batch_size: int | None = Field(
        None, ge=1, description="Batch size for validation and test; default: 4 x batch_size."
    )
    shuffle: bool = Field(True, description="Shuffle the training data every epoch (seeded).")
    class_weight: (
        Literal["balanced"]
        | dict[int, float]
        | dict[str, Literal["balanced"] | dict[int, float]]
        | None
    ) = Field(
        None,
        description="`balanced` (n / (k * count)) or class index -> weight; a model of several "
        "outputs: a mapping output name -> either form.",
    )
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    precision: Literal["32", "bf16-mixed", "16-mixed"] = Field(
        "32", description='"32", bf16-mixed or 16-mixed (torch.autocast; fp16 with a grad scaler).'
    )
    compile: bool = Field(False, description="torch.compile the model.")
    sync_batchnorm: bool = Field(
        False, description="Distributed: synchronise BatchNormalization statistics across ranks."
    )
    callbacks: list[CallbackRef] = Field(default_factory=list, description="Keras' callbacks.")
    steps_per_epoch: int | None = Field(
        None,
        ge=1,
        description="Training steps per epoch (default: one pass). As in Keras, epochs take the "
        "next batches of the current shuffled pass; an epoch that reaches the end of the pass "
        "ends there, and the next one starts a new pass.",
    )
    validation_steps: int | None = Field(
        None, ge=1, description="Validation batches per evaluation, from the first (default: all)."
    )
    validation_freq: int | list[Annotated[int, Field(ge=1)]] = Field(
        1,
        description="Validate every N epochs, or at the listed epochs (1-based), as Keras.",
    )
    initial_epoch: int = Field(
        0,
        ge=0,
        description="The epoch to start at (Keras': numbering and shuffles start there; the "
        "learning-rate schedule starts at step 0). Below `epochs`.",
    )
    verbose: Literal["auto", 0, 1, 2] = Field(
        "auto",
        description="Keras' verbose: 0 silent, 1 a live progress bar (on a terminal), 2 one line "
        "per epoch; auto: 1 on a terminal, else 2.",
    )

    keras_pointers: ClassVar[dict[str, str]] = {
        "validation_split": "a recipe's splits belong to its data: data.validation_split",
        "validation_data": "give the validation data as data.validation (a source)",
        "x": "a recipe's data is data.source",
        "y": "a recipe's data is data.source (and data.y or data.target)",
    }

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"must be auto, cpu, cuda, cuda:N or mps (got '{value}')")
        return value

    @field_validator("validation_freq")
    @classmethod
    def _validation_freq(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"must be >= 1 (every N epochs) or a list of epochs (got {value})")
        return value

    @field_validator("initial_epoch")
    @classmethod
    def _initial_epoch_below_epochs(cls, value: int, info: ValidationInfo) -> int:
        epochs = info.data.get("epochs")
        if epochs is not None and value >= epochs:
            raise ValueError(
                f"initial_epoch {value} leaves no epoch to train: epochs is {epochs} (the "
                "total, counted from 0, so the run trains epochs initial_epoch+1 .. epochs)"
            )
        return value

    def validates_after(self, epoch: int) -> bool:
        """Whether epoch `epoch` (0-based) ends with a validation pass (Keras' rule)."""
        if isinstance(self.validation_freq, int):
            return (epoch + 1) % self.validation_freq == 0
        return epoch + 1 in self.validation_freq

    @field_validator("class_weight")
    @classmethod
    def _weights(cls, value: Any) -> Any:
        tables = list(value.values()) if isinstance(value, dict) else []
        if not tables or not all(isinstance(t, dict | str) for t in tables):
            tables = [value]  # one table, not a mapping by output
        for table in tables:
            if isinstance(table, dict):
                for label, weight in table.items():
                    if label < 0 or weight < 0:
                        raise ValueError(
                            f"class weights must be >= 0 for labels >= 0 (got {table})"
                        )
        return value
