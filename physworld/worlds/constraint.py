"""constraint scenarios (being written)."""

SCENARIOS: dict = {}
