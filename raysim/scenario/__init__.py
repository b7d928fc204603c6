"""Scenario files: the TOML loader (``config``), the typed sections (``sections``), the checks
between sections (``combinations``), and what a scenario becomes (``preparation``, ``composition``)."""
