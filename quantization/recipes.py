"""Recipes are data in the core (:mod:`edgeport.recipes`); re-exported here beside the quantization passes."""

from edgeport.recipes import RECIPES, Recipe, get_recipe  # noqa: F401
