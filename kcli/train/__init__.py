"""Training: the fit loop, callbacks and checkpoints (torch is imported in the modules)."""
