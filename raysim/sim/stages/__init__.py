"""Stages: each optional feature of a star run as the moments of a round it acts on
(stage.py has the protocol; composition.py builds the run's list)."""
