"""The kernel: what every star run needs. The event clock (clock.py), the task record and
dispatch's rules (dispatch.py), the driver's event loop, server step and checkpoints (driver.py,
server_step.py), what it is handed (parts.py), the rows it records (records.py, through the one
row builder of every kind of run, table_rows.py), what crosses to the workers (tasks.py,
executor.py), evaluation as sums over slices (evaluation.py) and the run-loop protocol every kind
of run answers (run_loop.py)."""
