"""The layer catalog. Importing this package registers every layer type (no torch import)."""

# Each family module registers its layers when imported; the order is the catalog's order.
from kcli.model.layers import (  # noqa: F401, I001  (catalog order, not alphabetical)
    core,
    masking,
    reshaping,
    edges,
    regularization,
    normalization,
    conv,
    conv_transpose,
    conv_depthwise,
    pooling,
    recurrent,
    conv_recurrent,
    wrappers,
    embedding,
    merge,
    attention,
    activation_layers,
    preprocessing,
    encoding,
    adapted,
    text,
    augmentation,
    shared,
    submodel,
)
from kcli.model.layers.base import LayerSpec, Shape, layer_registry

LayerRef = layer_registry.field(shorthand=False, one_key=True)
"""The type of an item of `model.layers`: `{type: Name, ...}` (or the one-key form)."""

__all__ = ["LayerRef", "LayerSpec", "Shape", "layer_registry"]
