"""`kcli validate` builds the pydantic schemas of the specs a recipe uses, not the whole catalog.

Building every spec's validator (a union of ~170 classes) was most of `kcli validate`'s time.
Timings are not asserted (shared machines); what makes it fast is: after validating the
quickstart recipe in a fresh process, only the layer, optimizer and loss classes it names have
their schemas built, and neither torch nor scikit-learn was imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

PROBE = """
import json, sys
from kcli.recipe.load import check_recipe
check_recipe(sys.argv[1])
from kcli.compile.losses import loss_registry
from kcli.compile.optimizers import optimizer_registry
from kcli.model.layers import layer_registry
built = {
    kind: sorted(name for name, cls in registry.specs.items() if cls.__pydantic_complete__)
    for kind, registry in
    (("layers", layer_registry), ("optimizers", optimizer_registry), ("losses", loss_registry))
}
built["imported"] = sorted(m for m in ("torch", "sklearn", "matplotlib") if m in sys.modules)
print(json.dumps(built))
"""


def test_validating_builds_only_the_specs_the_recipe_uses():
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(RECIPES / "quickstart.yaml")],
        capture_output=True,
        text=True,
        check=True,
    )
    built = json.loads(done.stdout)
    assert built["layers"] == ["Dense", "Dropout"]
    assert built["optimizers"] == ["Adam"]
    assert built["losses"] == ["sparse_categorical_crossentropy"]
    assert built["imported"] == []
