"""Data: generation, the columnar dataset store, and import/export of other layouts."""
