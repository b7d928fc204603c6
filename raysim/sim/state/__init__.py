"""What a run keeps between rounds and across a resume: each client's state on the server
(client_state.py, in the per-client store, state_store.py) and the driver's snapshot as data
only (checkpoint.py), checked against the live run when restored (restored.py)."""
