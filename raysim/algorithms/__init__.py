"""The math, pure numpy: aggregation, strategies, server optimizers, robust rules, FedNova,
SCAFFOLD, staleness, attacks, personal layers. Nothing here knows about time, Ray or scenario files."""
