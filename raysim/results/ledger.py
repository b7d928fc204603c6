"""``raysim verify RUN_DIR``: recompute a ledger run's chain from its ``ledger.json``.

Every block's Merkle root, header hash and pointer are recomputed (``network/ledger.py``); the
chain's head is also checked against the block hashes the run recorded in ``rounds.parquet``,
so a block edited together with every later hash is caught too.
"""

from __future__ import annotations

from pathlib import Path

from raysim.network.ledger import Verification, chain_from_json, verify_chain
from raysim.results.results import ResultsError, _read_table


def verify_run(run_dir: Path) -> Verification:
    """The verdict on ``run_dir``'s chain; ResultsError when there is no readable chain."""
    path = run_dir / "ledger.json"
    if not path.is_file():
        raise ResultsError(f"{path} does not exist: only runs with network.topology = 'ledger' have a chain")
    try:
        chain = chain_from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ResultsError(f"{path} is not a raysim chain ({exc}); nothing to verify") from exc
    rounds = run_dir / "rounds.parquet"
    head = None
    if rounds.is_file():
        recorded = _read_table(rounds)
        if "block_hash" in recorded.columns and len(recorded):
            head = str(recorded["block_hash"].iloc[-1])
    return verify_chain(chain, head)
