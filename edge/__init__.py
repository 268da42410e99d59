"""On-device side: one runner per format, parity, and the evaluator."""
