"""The simulated clock for runs raysim does not drive itself: a Flower Grid whose messages are
timed on raysim's devices (flower_grid.py), and a vertical run's protocol phases (vertical.py)."""
