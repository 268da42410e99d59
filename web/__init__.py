"""Browser side: the demo page, its server, and the Playwright-driven browser evaluator."""
