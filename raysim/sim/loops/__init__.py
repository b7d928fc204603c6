"""The kinds of run without a server: the round loop shared by gossip and HierFAVG (nodes.py),
and each topology's own communication and combination (gossip.py, hierfavg.py). They run on the
kernel's clock, cost model and row builder, and answer the run-loop protocol."""
