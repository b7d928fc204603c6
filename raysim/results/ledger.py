"""``raysim verify RUN_DIR``: recompute a ledger run's chain from its ``ledger.json``.

Every block's Merkle root, header hash and pointer are recomputed (``network/ledger.py``); the
chain's head is also checked against a trusted head: ``--head HASH`` (published elsewhere), else
the last block hash the run recorded in ``rounds.parquet``, so a block edited together with every
later hash is caught too. Without either, that check cannot be made, and the verdict says so.

The folder may come from anyone: ``ledger.json`` is checked to be a list of blocks with exactly
the fields and types raysim writes (hashes and digests as 64 hex digits) before anything is
recomputed, so a malformed file is bad input (exit 2), never mistaken for an edited block (exit 1).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from raysim.network.ledger import Block, Verification, chain_from_json, verify_chain
from raysim.results.results import ResultsError, _read_table, read_json

HASH = re.compile(r"[0-9a-fA-F]{64}")  # a SHA-256 in hex: block hashes, Merkle roots, update digests
_FIELDS = {"index": int, "prev_hash": str, "merkle_root": str, "timestamp": (int, float), "producer": int,
           "digests": list, "hash": str}


def verify_run(run_dir: Path, head: str | None = None) -> tuple[Verification, str]:
    """The verdict on ``run_dir``'s chain and a line saying what its head was checked against;
    ResultsError when there is no readable chain, or ``head`` (or the recorded head) is no hash."""
    path = run_dir / "ledger.json"
    if not path.is_file():
        raise ResultsError(f"{path} does not exist: only runs with network.topology = 'ledger' have a chain")
    chain = _read_chain(path)
    if head is not None:
        if not HASH.fullmatch(head):
            raise ResultsError(f"--head {head[:80]!r} is not a block hash: give the 64 hex digits of the last "
                               "block's hash")
        return verify_chain(chain, head.lower()), "head: checked against --head"
    recorded = _recorded_head(run_dir / "rounds.parquet")
    if recorded is None:
        return verify_chain(chain), (f"head: NOT checked: {run_dir / 'rounds.parquet'} is missing or has no "
                                     "block_hash, so a chain rewritten with every later hash would pass; give "
                                     "--head HASH, the last block's hash published elsewhere")
    return verify_chain(chain, recorded), "head: checked against the last block_hash in rounds.parquet"


def _read_chain(path: Path) -> list[Block]:
    rows = read_json(path)
    if not isinstance(rows, list):
        raise ResultsError(f"{path} holds a {type(rows).__name__}, not a raysim chain (a list of blocks); "
                           "nothing to verify")
    for i, row in enumerate(rows):
        fault = _fault(row)
        if fault:
            raise ResultsError(f"{path}: block {i} is malformed ({fault}); not a raysim chain, nothing to verify")
    return chain_from_json(json.dumps(rows))


def _fault(row) -> str:
    """What keeps ``row`` from being a block as raysim writes it ('' when nothing)."""
    if not isinstance(row, dict) or set(row) != set(_FIELDS):
        return f"a block has exactly the fields {sorted(_FIELDS)}"
    for name, kind in _FIELDS.items():
        if isinstance(row[name], bool) or not isinstance(row[name], kind):
            return f"{name} is a {type(row[name]).__name__}"
    hashes = [row["prev_hash"], row["merkle_root"], row["hash"], *row["digests"]]
    if not all(isinstance(h, str) and HASH.fullmatch(h) for h in hashes):
        return "its hashes and digests must be 64 hex digits each"
    return ""


def _recorded_head(rounds: Path) -> str | None:
    """The last ``block_hash`` the run recorded, or None when there is none to check against."""
    if not rounds.is_file():
        return None
    recorded = _read_table(rounds)
    hashes = recorded["block_hash"].dropna() if "block_hash" in recorded.columns else ()
    if not len(hashes):  # a round without a block records none: the head is the last one recorded
        return None
    head = hashes.iloc[-1]
    if not (isinstance(head, str) and HASH.fullmatch(head)):
        raise ResultsError(f"{rounds}: the last block_hash is not a block hash (64 hex digits); the file is damaged")
    return head
