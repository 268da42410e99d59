"""The demo's registrations: built-in models and data sets (entry point ``edgeport.plugins: builtins``)."""

from . import datasets, minilm, models  # noqa: F401  (each registers what it defines)
