"""Built-in demo models and the `edgeport demo` main job."""
