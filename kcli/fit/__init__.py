"""The `fit:` stage (Keras' model.fit): the training loop and what runs inside it.

Takes a built model, batches, an optimizer and an objective; gives trained weights, one logs
dict per epoch and checkpoints. Entry point: `trainer.Trainer.fit`; the math of one step is in
`steps.py`, callbacks in `callbacks/`, checkpoint files in `checkpoint.py`, the process group of
a distributed run in `distributed.py`. Knows nothing of YAML or of the run folder's layout.
"""
