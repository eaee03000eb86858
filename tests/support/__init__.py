"""Helpers shared by test modules (kept free of imports: subprocesses run
`python -m support.<module>` and should pay only for what they use)."""
