"""Incentives: rewards from contributions, reputation, participation, and a pricing game.

Pure math: proportional rewards and Beta reputation (``rewards.py``), the participation
decision (``participation.py``), the Stackelberg pricing game and its closed form
(``stackelberg.py``), the settings (``config.py``). The simulation floor applies them
(sim/stages/incentives.py).
"""
