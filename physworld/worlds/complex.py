"""complex scenarios (being written)."""

SCENARIOS: dict = {}
