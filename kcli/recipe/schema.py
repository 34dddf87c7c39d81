"""The whole recipe as pydantic models (RECIPE.md). No torch: `kcli validate` stops here.

Each section is declared by the stage that gives it meaning (kcli/model/spec.py,
kcli/compile/spec.py, kcli/data/spec.py, kcli/fit/spec.py); this module only assembles them into
`Recipe` and adds what belongs to the recipe as a whole: its name, seed and `expect:` gates.
"""

from __future__ import annotations

import operator
import re
from typing import Any, Literal

from pydantic import Field, field_validator

from kcli.compile.spec import CompileSpec
from kcli.data.spec import DataSpec
from kcli.fit.spec import FitSpec
from kcli.model.spec import ModelSpec
from kcli.registry import Spec

__all__ = ["CompileSpec", "DataSpec", "FitSpec", "ModelSpec", "Recipe", "gate_holds", "parse_gate"]


_GATE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")
_OPERATORS = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


def parse_gate(text: str) -> tuple[str, float]:
    """`">= 0.95"` -> ('>=', 0.95); ValueError for anything else."""
    match = _GATE.match(str(text))
    if not match:
        raise ValueError(f"a gate is '<op> <number>' with op one of >= > <= < == != (got '{text}')")
    return match.group(1), float(match.group(2))


def gate_holds(op: str, threshold: float, value: float) -> bool:
    return bool(_OPERATORS[op](value, threshold))


class Recipe(Spec):
    """A whole recipe file."""

    kcli: Literal[1] = Field(1, description="Recipe format version.")
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$",
        description="Names the run folder; default: the recipe file's stem.",
    )
    description: str | None = None
    seed: int = Field(0, ge=0, description="Seeds Python, NumPy, torch and every shuffle.")
    plugins: list[str] = Field(
        default_factory=list,
        description="Python modules with the recipe's own layers, losses, metrics and callbacks "
        "(my_layers -> my_layers.py beside the recipe), imported before the rest is validated: "
        "they run the user's code.",
    )
    data: DataSpec
    model: ModelSpec
    compile: CompileSpec
    fit: FitSpec = Field(default_factory=FitSpec)
    expect: dict[str, str] = Field(
        default_factory=dict,
        description="Final metric -> gate, e.g. test_accuracy: '>= 0.95'; exit 1 if one fails.",
    )

    @field_validator("expect", mode="before")
    @classmethod
    def _gates(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key, gate in value.items():
                parse_gate(gate)
                if not re.match(r"^(val_|test_)?[A-Za-z0-9_]+$", str(key)):
                    raise ValueError(f"'{key}' is not a metric name (loss, val_*, test_*)")
        return value
