"""The simulation without Ray: the clock, device profiles, round policies, client selection, the
server step, evaluation slices, what crosses to the workers, and the driver's event loop."""
