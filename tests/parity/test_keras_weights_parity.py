"""kcli.model.keras_weights against the parity tests' own layout mappings, for every layer case.

test_layer_parity.py maps each kcli module's weights to Keras' by hand, per layer family, and
checks them against Keras' layer (names, order, the outputs they give). Here the production
mapping (kcli.model.keras_weights: kcli.model.nn.keras_layout's layouts, in Keras' order) must
give exactly those arrays for every case of layer_cases.py, and loading them back
(`torch_tensor`, the inverse) must give the module's own weights bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":  # pragma: no cover - someone exported another backend
    pytest.skip("the parity tests need Keras' torch backend", allow_module_level=True)

from kcli.model.keras_weights import keras_order, module_keras_weights  # noqa: E402
from kcli.model.layers import layer_registry  # noqa: E402
from kcli.model.nn.keras_layout import torch_tensor  # noqa: E402
from tests.parity.layer_cases import LAYER_CASES  # noqa: E402
from tests.parity.test_layer_parity import _seeded, keras_weights, randomize  # noqa: E402


def _weighted_cases():
    cases = []
    for case in LAYER_CASES:
        module = layer_registry.validate_spec(case.spec).build([tuple(s) for s in case.shapes])
        if module.state_dict():
            cases.append(pytest.param(case, id=case.id))
    return cases


@pytest.mark.parametrize("case", _weighted_cases())
def test_keras_weights_are_the_parity_mapping_and_load_back(case):
    module = layer_registry.validate_spec(case.spec).build([tuple(s) for s in case.shapes])
    randomize(module, _seeded(case.id))
    tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    want = [value.detach().numpy() for _, value in keras_weights(case, tensors)]
    got = module_keras_weights(module)
    assert [a.shape for a in got] == [a.shape for a in want]
    for ours, theirs in zip(got, want, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # The inverse: each Keras array back in kcli's layout is the stored weight itself.
    state = module.state_dict()
    for key, array in zip(keras_order(module), got, strict=True):
        path, _, name = key.rpartition(".")
        back = torch_tensor(module.get_submodule(path), name, torch.from_numpy(array))
        assert torch.equal(back, state[key]), key
