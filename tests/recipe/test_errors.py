"""Every kind of bad recipe: exit 2, `file:line:col: path: message`, never a traceback.

The expected line and column of each problem are computed from the recipe text the test writes
(`where(...)`), so a test fails if the loader points at the wrong place. Errors are read off the
CLI's real output, through typer's CliRunner and once through a real `python -m kcli` process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kcli.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]

HEAD = """\
data:
  source: synthetic:classification
compile:
  loss: mse
"""


def write(folder: Path, text: str, name: str = "recipe") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def where(path: Path, line_has: str, token: str | None = None, nth: int = 1) -> tuple[int, int]:
    """1-based (line, column) of `token` on the nth line containing `line_has` (default: itself).

    Computed from the file's own text, independently of kcli's source map.
    """
    token = line_has if token is None else token
    hits = [
        (number, line)
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if line_has in line
    ]
    number, line = hits[nth - 1]
    return number, line.index(token) + 1


def validate(*args: str):
    """Run `kcli validate`; the result, after checking it is a clean bad-input exit."""
    result = runner.invoke(app, ["validate", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def the_line(result, prefix: str) -> str:
    """The one output line starting with `prefix` (file:line:col: path:)."""
    lines = [line for line in error_lines(result) if line.startswith(prefix)]
    assert len(lines) == 1, f"no single line starting {prefix!r} in:\n{result.stderr}"
    return lines[0]


def test_unknown_layer_type_with_suggestion(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  input_shape: [8]
  layers:
    - {type: Dense, units: 16}
    - {type: Dens, units: 3}
""",
    )
    line, col = where(path, "Dens,", "Dens")
    message = the_line(validate(str(path)), f"{path}:{line}:{col}: model.layers[1].type: ")
    assert "unknown layer type 'Dens'" in message
    assert message.endswith("(did you mean 'Dense'?)")


def test_bad_value_says_bound_and_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  input_shape: [8]
  layers:
    - type: Dense
      units: 16
    - type: Dense
      units: -5
""",
    )
    line, col = where(path, "units: -5", "-5")  # line 11, column 14
    result = validate(str(path))
    assert error_lines(result) == [
        f"{path}:{line}:{col}: model.layers[1].units: must be > 0 (got -5)"
    ]


def test_wrong_type_of_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  input_shape: [8]
  layers:
    - {type: Dense, units: many}
""",
    )
    line, col = where(path, "units: many", "many")
    message = the_line(validate(str(path)), f"{path}:{line}:{col}: model.layers[0].units: ")
    assert "whole number" in message and "'many'" in message


def test_unknown_key_points_at_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  input_shape: [8]
  layers:
    - {type: Dense, unitz: 3}
fit:
  epoch: 3
""",
    )
    result = validate(str(path))
    line, col = where(path, "unitz")
    layer = the_line(result, f"{path}:{line}:{col}: model.layers[0].unitz: ")
    assert "unknown key 'unitz'" in layer and "(did you mean 'units'?)" in layer
    line, col = where(path, "epoch: 3", "epoch")
    fit = the_line(result, f"{path}:{line}:{col}: fit.epoch: ")
    assert "unknown key 'epoch'" in fit and "(did you mean 'epochs'?)" in fit


def test_missing_required_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
data:
  source: synthetic:classification
model:
  input_shape: [8]
  layers:
    - {type: Dense}
""",
    )
    result = validate(str(path))
    output = result.stderr
    assert "model.layers[0].units: missing required key 'units'" in output
    assert "compile: missing required key 'compile'" in output
    # The missing `units` is reported at the layer that lacks it.
    line, col = where(path, "{type: Dense}", "{")
    assert f"{path}:{line}:{col}: model.layers[0].units:" in output


@pytest.mark.parametrize(
    ("bad_line", "token"),
    [
        ("name: one: two", ": two"),  # a second `: ` on one line
        ("\tseed: 3", "\t"),  # a tab cannot indent YAML
    ],
    ids=["mapping-value", "tab"],
)
def test_yaml_syntax_error_gives_its_line(tmp_path: Path, bad_line: str, token: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(HEAD + bad_line + "\nmodel: {input_shape: [8], layers: [{type: Dense}]}\n")
    line, col = where(path, bad_line, token)
    result = validate(str(path))
    (message,) = error_lines(result)
    assert message.startswith(f"{path}:{line}:{col}: YAML syntax error")


def test_yaml_syntax_error_of_unclosed_bracket_points_where_it_is_found(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  input_shape: [8
  layers: []
""",
    )
    # The parser notices the missing `]` at the `:` after `layers` on the next line.
    line, col = where(path, "layers: []", ":")
    (message,) = error_lines(validate(str(path)))
    assert message.startswith(f"{path}:{line}:{col}: YAML syntax error")
    assert "flow sequence" in message


def test_duplicate_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  input_shape: [8]
  layers:
    - {type: Dense, units: 4, units: 5}
compile:
  loss: mae
""",
    )
    result = validate(str(path))
    line, col = where(path, "units: 5", "units: 5")
    assert f"{path}:{line}:{col}: model.layers[0].units: duplicate key 'units'" in result.stderr
    line, col = where(path, "compile:", nth=2)  # the second `compile:`, at line 9 column 1
    assert (line, col) == (9, 1)
    assert f"{path}:{line}:{col}: compile: duplicate key 'compile'" in result.stderr


def test_dangling_input_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  input_shape: [8]
  layers:
    - {type: Dense, units: 4}
    - type: Dense
      units: 2
      inputs: dens
""",
    )
    line, col = where(path, "inputs: dens", "dens")
    message = the_line(validate(str(path)), f"{path}:{line}:{col}: model.layers[1].inputs: ")
    assert "'dens'" in message and "(did you mean 'dense'?)" in message


def test_cycle_names_the_layers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  inputs: {x: [8]}
  layers:
    - {name: start, type: Dense, units: 4, inputs: x}
    - {name: a, type: Dense, units: 4, inputs: [c]}
    - {name: b, type: Dense, units: 4, inputs: a}
    - {name: c, type: Dense, units: 4, inputs: b}
    - {name: out, type: Add, inputs: [start, c]}
""",
    )
    # Reported at the first layer on the cycle (layer 1, `a`), where its mapping starts.
    line, col = where(path, "name: a,", "{")
    (message,) = error_lines(validate(str(path)))
    assert message.startswith(f"{path}:{line}:{col}: model.layers[1]: ")
    assert "cycle" in message
    for name in ("a", "b", "c"):
        assert f"{name} ->" in message or f"-> {name}" in message
    assert "start" not in message and "out" not in message


def test_layer_feeding_itself(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  inputs: {x: [8]}
  layers:
    - {name: loop, type: Dense, units: 8, inputs: [loop]}
""",
    )
    line, _ = where(path, "name: loop")
    result = validate(str(path))
    assert "layer 'loop' cannot feed itself" in result.stderr
    assert all(out.startswith(f"{path}:{line}:") for out in error_lines(result))


def test_bad_activation_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  input_shape: [8]
  layers:
    - {type: Dense, units: 4, activation: rellu}
""",
    )
    line, col = where(path, "rellu")
    message = the_line(validate(str(path)), f"{path}:{line}:{col}: model.layers[0].activation: ")
    assert "unknown activation 'rellu'" in message and "(did you mean 'relu'?)" in message


def test_ambiguous_and_unknown_regularizer_names(tmp_path: Path) -> None:
    # Keras 3 refuses 'l1_l2' and gives 'l1l2' zero penalties while its docstring promises
    # 0.01 each: kcli refuses both names and shows the explicit mapping instead.
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  input_shape: [8]
  layers:
    - {type: Dense, units: 4, kernel_regularizer: l1_l2}
    - {type: Dense, units: 4, kernel_regularizer: L1L2}
    - {type: Dense, units: 4, bias_regularizer: l3}
""",
    )
    result = validate(str(path))
    for index, name in [(0, "l1_l2"), (1, "L1L2")]:
        line, col = where(path, f"kernel_regularizer: {name}", name)
        prefix = f"{path}:{line}:{col}: model.layers[{index}].kernel_regularizer: "
        message = the_line(result, prefix)
        assert f"'{name}' is ambiguous" in message and "{l1: 0.01, l2: 0.01}" in message
    line, col = where(path, "l3")
    message = the_line(result, f"{path}:{line}:{col}: model.layers[2].bias_regularizer: ")
    assert "unknown regularizer 'l3'" in message and "{l1: a, l2: b}" in message


def test_shape_mismatches_name_layer_and_shapes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  inputs: {flat: [8], grid: [4, 2], other: [6]}
  layers:
    - {name: conv, type: Conv2D, filters: 2, kernel_size: 3, inputs: flat}
    - {name: joined, type: Concatenate, inputs: [flat, grid]}
    - {name: summed, type: Add, inputs: [flat, other]}
  outputs: [conv, joined, summed]
""",
    )
    result = validate(str(path))
    assert len(error_lines(result)) == 3  # all reported at once

    line, col = where(path, "name: conv", "{")
    conv = the_line(result, f"{path}:{line}:{col}: model.layers[0]: ")
    assert "'conv'" in conv and "Conv2D" in conv and "(None, 8)" in conv and "rank 3" in conv

    line, col = where(path, "name: joined", "{")
    joined = the_line(result, f"{path}:{line}:{col}: model.layers[1]: ")
    assert "'joined'" in joined and "(None, 8)" in joined and "(None, 4, 2)" in joined

    line, col = where(path, "name: summed", "{")
    summed = the_line(result, f"{path}:{line}:{col}: model.layers[2]: ")
    assert "'summed'" in summed and "(None, 8)" in summed and "(None, 6)" in summed


def test_dense_on_unflattened_input_is_not_an_error(tmp_path: Path) -> None:
    """Keras applies Dense to the last axis of a (batch, 4, 2) tensor: (batch, 4, 5)."""
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  input_shape: [4, 2]
  layers:
    - {type: Dense, units: 5}
""",
    )
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: ok" in result.stdout


def test_error_downstream_of_a_shape_error_is_not_repeated(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  input_shape: [8]
  layers:
    - {type: Conv2D, filters: 2, kernel_size: 3}
    - {type: Flatten}
    - {type: Dense, units: 3}
""",
    )
    (message,) = error_lines(validate(str(path)))
    assert "model.layers[0]" in message and "Conv2D" in message


def test_many_problems_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  input_shape: [8]
  layers:
    - Dense: {units: -5}
    - Dense: {unitz: 5}
    - Dens: {units: 5}
    - {type: Dense, units: 3, activation: rellu}
fit:
  epochs: 0
""",
    )
    result = validate(str(path))
    expected = [
        (where(path, "units: -5", "-5"), "model.layers[0].units: must be > 0 (got -5)"),
        (where(path, "unitz"), "model.layers[1].unitz: unknown key 'unitz'"),
        # With the unknown key set aside, the same layer's other problem is reported too.
        (where(path, "Dense: {unitz", "Dense"), "model.layers[1].units: missing required key"),
        (where(path, "Dens:", "Dens"), "model.layers[2].type: unknown layer type 'Dens'"),
        (where(path, "rellu"), "model.layers[3].activation: unknown activation 'rellu'"),
        (where(path, "epochs: 0", "0"), "fit.epochs: must be >= 1 (got 0)"),
    ]
    lines = error_lines(result)
    assert len(lines) == len(expected)
    for (line, col), text in expected:
        assert any(out.startswith(f"{path}:{line}:{col}: {text}") for out in lines), text


def test_several_recipes_checked_together(tmp_path: Path) -> None:
    good = write(
        tmp_path, HEAD + "model: {input_shape: [8], layers: [{type: Dense, units: 2}]}\n", "good"
    )
    bad = write(
        tmp_path, HEAD + "model: {input_shape: [8], layers: [{type: Dense, units: 0}]}\n", "bad"
    )
    result = validate(str(good), str(bad))
    assert f"{good}: ok" in result.stdout
    (message,) = error_lines(result)
    line, col = where(bad, "units: 0", "0}")
    assert message == f"{bad}:{line}:{col}: model.layers[0].units: must be > 0 (got 0)"


def test_missing_file_and_folder(tmp_path: Path) -> None:
    result = validate(str(tmp_path / "nope.yaml"))
    assert "no such recipe file" in result.stderr and "nope.yaml" in result.stderr
    result = validate(str(tmp_path))
    assert "folder" in result.stderr


def test_recipe_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- just\n- a list\n")
    (message,) = error_lines(validate(str(path)))
    assert message.startswith(f"{path}:1:1: ")


# ---- overrides: `kcli validate` takes none (CLI.md), `summarize` and `train` do ---------------


def summarize_fails(*args: str):
    result = runner.invoke(app, ["summarize", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def small_recipe(tmp_path: Path) -> Path:
    return write(
        tmp_path,
        HEAD
        + """\
model:
  input_shape: [8]
  layers:
    - {type: Dense, units: 4}
    - {type: Dense, units: 2}
""",
    )


def test_summarize_reports_graph_errors_like_validate(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  input_shape: [8]
  layers:
    - {type: Dense, units: 4}
    - {type: Conv2D, filters: 2, kernel_size: 3}
""",
    )
    line, col = where(path, "Conv2D", "{")
    (message,) = error_lines(summarize_fails(str(path)))
    assert message.startswith(f"{path}:{line}:{col}: model.layers[1]: layer 'conv2d': Conv2D")
    assert "(None, 4)" in message
    assert error_lines(validate(str(path))) == [message]


def test_override_with_unknown_key(small_recipe: Path) -> None:
    result = summarize_fails(str(small_recipe), "model.layers.0.unitz=3")
    (message,) = error_lines(result)
    assert "override model.layers.0.unitz=3" in message
    assert "model.layers[0].unitz: unknown key 'unitz' (did you mean 'units'?)" in message


def test_override_with_bad_value(small_recipe: Path) -> None:
    (message,) = error_lines(summarize_fails(str(small_recipe), "model.layers.1.units=-3"))
    assert "override model.layers.1.units=-3" in message
    assert message.endswith("model.layers[1].units: must be > 0 (got -3)")
    (message,) = error_lines(summarize_fails(str(small_recipe), "fit.epochs=abc"))
    assert "override fit.epochs=abc" in message and "fit.epochs: must be a whole number" in message


def test_override_with_invalid_yaml(small_recipe: Path) -> None:
    (message,) = error_lines(summarize_fails(str(small_recipe), "fit.epochs=[1"))
    assert "override fit.epochs=[1" in message and "not valid YAML" in message


def test_override_index_out_of_range(small_recipe: Path) -> None:
    for text in ("model.layers.5.units=3", "model.layers[5].units=3"):
        (message,) = error_lines(summarize_fails(str(small_recipe), text))
        assert f"override {text}" in message
        assert "model.layers[5]" in message and "out of range" in message
        assert "2 items" in message


def test_override_with_a_non_ascii_digit_key(small_recipe: Path) -> None:
    # Found by tests/test_fuzz.py: '¹' passes str.isdigit() but int() refuses it.
    (message,) = error_lines(summarize_fails(str(small_recipe), "model.layers.¹=3"))
    assert "override model.layers.¹=3" in message and "Traceback" not in message


def test_override_without_equals_sign(small_recipe: Path) -> None:
    result = summarize_fails(str(small_recipe), "fit.epochs")
    assert "KEY=VALUE" in result.stderr


def test_every_override_problem_names_the_recipe_file(small_recipe: Path) -> None:
    for text in ("fit.epochs=abc", "fit.epochs=[1", "model.layers.5.units=3"):
        (message,) = error_lines(summarize_fails(str(small_recipe), text))
        assert message.startswith(f"{small_recipe}: override {text}: "), message


def test_override_fixes_a_bad_recipe(tmp_path: Path) -> None:
    """Overrides apply to the raw mapping before validation, so they can repair a value."""
    path = write(tmp_path, HEAD + "model: {input_shape: [8], layers: [{type: Dense, units: -1}]}\n")
    result = runner.invoke(app, ["summarize", "--json", str(path), "model.layers.0.units=3"])
    assert result.exit_code == 0, result.output
    assert '"total_params": 27' in result.stdout  # 8*3 + 3


# ---- a real process, and torch stays out of `validate` ---------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_real_process_exit_code_and_message(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD
        + """\
model:
  input_shape: [8]
  layers:
    - {type: Dense, units: -5}
    - {type: Conv4D, filters: 2}
""",
    )
    process = subprocess.run(
        [sys.executable, "-m", "kcli", "validate", str(path)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=60,
    )
    assert process.returncode == 2
    assert process.stdout == ""
    assert "Traceback" not in process.stderr
    line, col = where(path, "units: -5", "-5")
    lines = process.stderr.splitlines()
    assert f"{path}:{line}:{col}: model.layers[0].units: must be > 0 (got -5)" in lines
    line, col = where(path, "Conv4D")
    assert any(out.startswith(f"{path}:{line}:{col}: model.layers[1].type: ") for out in lines)


def test_validate_does_not_import_torch(tmp_path: Path) -> None:
    good = write(
        tmp_path,
        HEAD + "model: {input_shape: [4, 4, 1], layers: "
        "[{type: Conv2D, filters: 2, kernel_size: 3}, {type: Flatten}, "
        "{type: Dense, units: 2, activation: softmax}]}\n",
        "good",
    )
    bad = write(
        tmp_path,
        HEAD + "model: {input_shape: [4], layers: [{type: Conv2D, filters: 2, kernel_size: 3}]}\n",
        "bad",
    )
    script = textwrap.dedent(
        f"""
        import sys
        from typer.testing import CliRunner
        from kcli.cli import app
        runner = CliRunner()
        assert runner.invoke(app, ["validate", {str(good)!r}]).exit_code == 0
        assert runner.invoke(app, ["validate", {str(bad)!r}]).exit_code == 2
        heavy = sorted(m for m in ("torch", "numpy", "sklearn") if m in sys.modules)
        print("imported:", heavy)
        """
    )
    process = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=_env(), timeout=60
    )
    assert process.returncode == 0, process.stderr
    assert "imported: []" in process.stdout
