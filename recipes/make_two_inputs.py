"""Write the two-input data set of recipes/two_inputs.yaml: an image-like input and a tabular one.

Four classes; the class is two bits. Bit 0 is only visible in the 8x8 grey image (one of two
stroke templates, drawn with noise); bit 1 is only visible in the 3 tabular columns (one of two
Gaussian blobs). A model needs both inputs: either one alone can reach about 50% accuracy.

    python recipes/make_two_inputs.py                 # rewrites recipes/two_inputs.npz
    python recipes/make_two_inputs.py -o /tmp/x.npz   # somewhere else

The archive holds `pixels` (uint8, (n, 8, 8, 1), 0..255: small enough to keep in git), `meta`
(float16, (n, 3)) and `label` (int64, (n,)). The arrays depend only on --seed and --samples.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_arrays(n_samples: int = 600, seed: int = 0) -> dict[str, np.ndarray]:
    """The arrays of the archive, generated from `seed` alone."""
    rng = np.random.default_rng(seed)
    label = rng.permutation(np.arange(n_samples) % 4).astype(np.int64)
    image_bit, meta_bit = label % 2, label // 2
    # Two stroke templates: a vertical bar (bit 0 = 0) and a horizontal bar (bit 0 = 1).
    templates = np.zeros((2, 8, 8), dtype=np.float64)
    templates[0, 1:7, 3:5] = 1.0
    templates[1, 3:5, 1:7] = 1.0
    # Jitter each stroke by one pixel and add noise, so the image is not a lookup.
    shifts = rng.integers(-1, 2, size=(n_samples, 2))
    images = np.stack(
        [
            np.roll(templates[b], tuple(s), axis=(0, 1))
            for b, s in zip(image_bit, shifts, strict=True)
        ]
    )
    images = np.clip(images * 0.8 + rng.normal(0.1, 0.25, size=images.shape), 0.0, 1.0)
    pixels = np.round(images * 255).astype(np.uint8)[..., None]
    centers = np.array([[1.0, -1.0, 0.5], [-1.0, 1.0, -0.5]])
    meta = centers[meta_bit] + rng.normal(0.0, 0.6, size=(n_samples, 3))
    return {"pixels": pixels, "meta": meta.astype(np.float16), "label": label}


def main(argv: list[str] | None = None) -> Path:
    """Parse arguments, write the archive, return its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=HERE / "two_inputs.npz")
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    np.savez_compressed(args.output, **make_arrays(args.samples, args.seed))
    print(f"wrote {args.output}")
    return args.output


if __name__ == "__main__":
    main()
