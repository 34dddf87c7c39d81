"""preprocess.json: the preprocessing a run fitted on its train split, read back and checked.

`kcli train` writes it (the Preprocessing and the TargetInfo as JSON); eval, predict, export and
`--resume` read it with `read_preprocessing`, which turns any damage into a KcliError naming it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kcli.errors import KcliError, Problem

PREPROCESS_FILE = "preprocess.json"


def read_preprocessing(path: Path) -> tuple[Any, Any]:
    """The fitted Preprocessing and TargetInfo of a run's preprocess.json; KcliError if damaged."""
    from kcli.data.preprocess import Preprocessing
    from kcli.data.targets import TargetInfo

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise KcliError(Problem(f"cannot read {path}: {error}")) from None
    if not isinstance(document, dict) or not isinstance(document.get("preprocessing"), dict):
        raise KcliError(Problem(f"{path}: damaged: no 'preprocessing' mapping in it"))
    target = document.get("target")
    if target is not None and not isinstance(target, dict):
        raise KcliError(Problem(f"{path}: damaged: 'target' is not a mapping"))
    try:
        return (
            Preprocessing.from_json(document["preprocessing"]),
            TargetInfo.from_json(target) if target else None,
        )
    except KcliError as error:
        raise KcliError(Problem(f"{path}: damaged: {error}")) from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        # pydantic's ValidationError is a ValueError
        what = f"missing {error}" if isinstance(error, KeyError) else str(error).splitlines()[0]
        raise KcliError(Problem(f"{path}: damaged: {what}")) from None
