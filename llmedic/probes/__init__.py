"""Stand-alone probes: stdlib-only scripts llmedic runs with a *target's* interpreter (a service's
virtual environment), where llmedic itself is not installed."""
