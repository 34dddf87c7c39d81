"""The `compile:` stage (Keras' model.compile): optimizers, schedules, losses and metrics.

Takes the recipe's `compile:` section (kcli/compile/spec.py), gives the torch pieces the training
loop runs: `OptimizerSpec.build(params)` (Keras' update rules, update_rules.py), `LossSpec`
objectives and streaming `Metric`s. Specs are torch-free; torch is imported when they build.
Entry point: `spec.CompileSpec`, whose fields build each piece.
"""
