"""The application layer, above everything: the command line (:mod:`.cli`), the pytest plugin
(:mod:`.pytest_plugin`) and the demo job (:mod:`.demo`). It may import every layer; nothing imports it (the
``edgeport`` console script and ``python -m edgeport`` reach the CLI through the entry point)."""
