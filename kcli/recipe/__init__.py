"""The recipe: YAML text (+ overrides) -> a validated `Recipe`, every error located in the file.

Takes a recipe file and KEY=VALUE overrides, gives a `LoadedRecipe` (recipe, source positions).
Entry points: `load.load_recipe` and `load.check_recipe` (what `kcli validate` runs). Torch-free:
the Recipe assembles the section specs that model/, compile/, data/ and fit/ declare, and
`catalog.py` describes them for `kcli layers`.
"""
