"""ramp scenarios (being written)."""

SCENARIOS: dict = {}
