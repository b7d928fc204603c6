"""Communication topologies and protocols (issue 14), pure numpy/networkx/hashlib.

Floor 1: nothing here knows of the simulation's driver or of Ray. ``transport`` times messages on
the simulated clock; ``mqtt`` is the broker; ``graphs`` and ``mixing`` are gossip; ``hierarchy``
is HierFAVG; ``ledger`` is the hash chain and its consensus; ``config`` is ``[network]``."""
