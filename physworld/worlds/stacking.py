"""stacking scenarios (being written)."""

SCENARIOS: dict = {}
