"""Pure analysis functions: no I/O, no Prefect. Unit-testable and benchmarkable on their own."""
