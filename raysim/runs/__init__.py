"""The run kinds that are not the star driver's, each handed its scenario by ``raysim.api.run``:
a vertical run (parties, PSI and a vertical trainer) and a Flower run (a ServerApp and ClientApps
on raysim's clock). Floor 6, with ``raysim.api``."""
