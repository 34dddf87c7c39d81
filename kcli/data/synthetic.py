"""`synthetic:NAME` sources: one params spec per generator, with its seeded generator.

Each spec lists the generator's `params:` with defaults that train in seconds, so a recipe needs
no file at all. `generate(rng)` (numpy imported inside, so `kcli validate` stays light) returns
`(x, y)`: x float32 with samples on axis 0 (channels last for images and sequences), y int64
class indices, or float32 values for `regression`. Classes are balanced and shuffled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from kcli.registry import Spec

if TYPE_CHECKING:
    import numpy as np


def _balanced_labels(rng: np.random.Generator, n: int, n_classes: int) -> np.ndarray:
    import numpy as np

    return rng.permutation(np.arange(n) % n_classes).astype(np.int64)


class SyntheticParams(Spec):
    """Parameters every generator takes."""

    n_samples: int = Field(500, ge=2, description="How many samples to generate.")
    noise: float = Field(0.1, ge=0, description="Standard deviation of the added noise.")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample of x (sizes the data before it is generated)."""
        return (2,)  # the 2-D generators: moons, circles, spirals

    def generate(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError  # every generator overrides this


class _ClassParams(SyntheticParams):
    n_classes: int = Field(2, ge=2, description="Number of classes.")

    @model_validator(mode="after")
    def _enough_samples(self) -> Any:
        if self.n_samples < self.n_classes:
            raise ValueError(f"n_samples ({self.n_samples}) < n_classes ({self.n_classes})")
        return self


class ClassificationParams(_ClassParams):
    """Gaussian blobs: one random center per class (N(0, 1) * class_sep), noise around it."""

    n_features: int = Field(10, ge=1)
    class_sep: float = Field(1.0, gt=0, description="Scale of the class centers' spread.")
    noise: float = Field(1.0, ge=0, description="Std of the scatter around each center.")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.n_features,)

    def generate(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = _balanced_labels(rng, self.n_samples, self.n_classes)
        centers = rng.normal(size=(self.n_classes, self.n_features)) * self.class_sep
        x = centers[y] + self.noise * rng.normal(size=(self.n_samples, self.n_features))
        return x.astype("float32"), y


class RegressionParams(SyntheticParams):
    """y = x @ w + b + noise, x ~ N(0, 1); y has shape (n,) for one target, (n, k) for k."""

    n_features: int = Field(10, ge=1)
    n_targets: int = Field(1, ge=1)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.n_features + self.n_targets,)  # y is as large as a few more features

    def generate(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(self.n_samples, self.n_features))
        weights = rng.normal(size=(self.n_features, self.n_targets))
        bias = rng.normal(size=self.n_targets)
        y = x @ weights + bias + self.noise * rng.normal(size=(self.n_samples, self.n_targets))
        if self.n_targets == 1:
            y = y[:, 0]
        return x.astype("float32"), y.astype("float32")


class MoonsParams(SyntheticParams):
    """Two interleaving half circles in 2-D (classes 0 and 1)."""

    def generate(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        y = _balanced_labels(rng, self.n_samples, 2)
        angle = rng.uniform(0, np.pi, size=self.n_samples)
        upper = np.stack([np.cos(angle), np.sin(angle)], axis=1)
        lower = np.stack([1 - np.cos(angle), 0.5 - np.sin(angle)], axis=1)
        x = np.where(y[:, None] == 0, upper, lower)
        x = x + self.noise * rng.normal(size=x.shape)
        return x.astype(np.float32), y


class CirclesParams(SyntheticParams):
    """A circle of radius 1 (class 0) around one of radius `factor` (class 1), in 2-D."""

    noise: float = Field(0.05, ge=0)
    factor: float = Field(0.5, gt=0, lt=1, description="Inner radius / outer radius.")

    def generate(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        y = _balanced_labels(rng, self.n_samples, 2)
        angle = rng.uniform(0, 2 * np.pi, size=self.n_samples)
        radius = np.where(y == 0, 1.0, self.factor)
        x = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        x = x + self.noise * rng.normal(size=x.shape)
        return x.astype(np.float32), y


class SpiralsParams(_ClassParams):
    """`n_classes` interleaved spiral arms in 2-D, each turning `turns` times."""

    n_classes: int = Field(3, ge=2)
    turns: float = Field(1.0, gt=0)

    def generate(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        y = _balanced_labels(rng, self.n_samples, self.n_classes)
        radius = rng.uniform(0.05, 1.0, size=self.n_samples)
        angle = 2 * np.pi * (y / self.n_classes + self.turns * radius)
        x = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        x = x + self.noise * rng.normal(size=x.shape)
        return x.astype(np.float32), y


class SequencesParams(_ClassParams):
    """Sequences whose class is their frequency, shape (n, length, n_features).

    With `vocab_size`, token-id sequences of shape (n, length) instead (for an Embedding): ids
    1..vocab_size-1 are cut into one band per class, each token comes from its class's band, or
    with probability `noise` from the whole vocabulary; id 0 is never used (padding).
    """

    length: int = Field(20, ge=2, description="Time steps per sequence.")
    n_features: int = Field(1, ge=1, description="Values per time step (float sequences).")
    vocab_size: int | None = Field(None, ge=3, description="Token sequences of these ids.")

    @model_validator(mode="after")
    def _vocab_covers_classes(self) -> Any:
        if self.vocab_size is not None:
            if self.vocab_size - 1 < self.n_classes:
                raise ValueError(
                    f"vocab_size - 1 ({self.vocab_size - 1}) must be >= n_classes "
                    f"({self.n_classes}): each class needs a token of its own"
                )
            if self.noise > 1:
                raise ValueError(f"with vocab_size, noise is a probability; got {self.noise}")
        return self

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.length,) if self.vocab_size is not None else (self.length, self.n_features)

    def generate(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        n, length = self.n_samples, self.length
        y = _balanced_labels(rng, n, self.n_classes)
        if self.vocab_size is not None:
            edges = np.linspace(1, self.vocab_size, self.n_classes + 1).astype(np.int64)
            low, high = edges[y][:, None], edges[y + 1][:, None]
            own = low + np.floor(rng.uniform(size=(n, length)) * (high - low)).astype(np.int64)
            anywhere = rng.integers(1, self.vocab_size, size=(n, length))
            x = np.where(rng.uniform(size=(n, length)) < self.noise, anywhere, own)
            return x.astype(np.float32), y
        steps = np.arange(length)[None, :, None]
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1, self.n_features))
        cycles = (y + 1)[:, None, None]  # class c completes c + 1 periods over the sequence
        x = np.sin(2 * np.pi * cycles * steps / length + phase)
        x = x + self.noise * rng.normal(size=x.shape)
        return x.astype(np.float32), y


class ImagesParams(_ClassParams):
    """Images (n, height, width, channels): a random template per class plus noise."""

    height: int = Field(8, ge=1)
    width: int = Field(8, ge=1)
    channels: int = Field(1, ge=1)
    noise: float = Field(0.5, ge=0)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.height, self.width, self.channels)

    def generate(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        shape = (self.height, self.width, self.channels)
        y = _balanced_labels(rng, self.n_samples, self.n_classes)
        templates = rng.uniform(size=(self.n_classes, *shape))
        x = templates[y] + self.noise * rng.normal(size=(self.n_samples, *shape))
        return x.astype("float32"), y


SYNTHETIC_PARAMS: dict[str, type[SyntheticParams]] = {
    "classification": ClassificationParams,
    "regression": RegressionParams,
    "moons": MoonsParams,
    "circles": CirclesParams,
    "spirals": SpiralsParams,
    "sequences": SequencesParams,
    "images": ImagesParams,
}
