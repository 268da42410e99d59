"""``python -m edgeport``: the same entry point as the ``edgeport`` console script (the CLI lives in the app layer,
which the core never imports)."""

from importlib.metadata import entry_points

(main,) = [ep for ep in entry_points(group="console_scripts", name="edgeport") if ep.value.startswith("edgeport.")]
raise SystemExit(main.load()())
