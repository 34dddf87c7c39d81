"""kcli: a Keras-style YAML recipe in, a reproducible PyTorch training run out."""

__version__ = "0.1.0"
