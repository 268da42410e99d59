"""Converters: one plugin folder per target format (``tflite/``, ``tfjs/``, ``pte/`` ...), each registering itself
with ``edgeport.registry.register_target``; ``common`` holds what the converters share.

Plugins are listed in pyproject.toml under ``[project.entry-points."edgeport.plugins"]``.
"""
