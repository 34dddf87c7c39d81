"""Torch modules that Keras semantics need and torch.nn lacks (channels-last conv, Keras RNNs...)."""
