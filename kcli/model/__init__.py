"""The `model:` stage: ModelSpec -> GraphPlan (names, wiring, shapes; no torch) -> GraphModel.

Takes the recipe's `model:` section (kcli/model/spec.py), gives a built torch module and the
Keras-format summary. Entry point: `build.build_model_from_spec`; `graph.plan_graph` is the
torch-free part `kcli validate` runs. The layer catalog (`layers/`) and what layer arguments
name (activations, initializers, regularizers) live here; `nn/` holds the torch modules.
"""
