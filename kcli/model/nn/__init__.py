"""Torch modules Keras semantics need and torch.nn lacks (channels-last conv, Keras RNNs)."""
