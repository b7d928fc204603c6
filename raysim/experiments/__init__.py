"""Experiments: sweeps of scenarios over a grid and seeds, run as Ray Tune trials (``sweep.py``)."""
