"""minigame scenarios (being written)."""

SCENARIOS: dict = {}
