"""ECDH-PSI time for two parties of n ids each (raysim.vertical.psi, X25519 from `cryptography`).

Each party holds n distinct ids, ``overlap`` of them shared, in its own shuffled order. The
table gives the wall seconds of each step in one process (both parties' work added up, as if
they ran one after the other), the bytes that cross, and checks the result against the plain
set intersection.

    PYTHONPATH=. python benchmarks/psi.py --sizes 10000 100000 --out benchmarks/psi.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from environment import environment  # what the figures ran with
from raysim.vertical import psi


def measure(n: int, overlap: float, seed: int) -> dict:
    draw = np.random.default_rng(seed)
    people = draw.choice(10**12, size=2 * n, replace=False)
    shared = round(overlap * n)
    ids_a = draw.permutation(np.r_[people[:shared], people[shared:n]]).tolist()
    ids_b = draw.permutation(np.r_[people[:shared], people[n:2 * n - shared]]).tolist()
    key_a, key_b = psi.new_key(draw.bytes(32)), psi.new_key(draw.bytes(32))
    steps = {}
    started = time.perf_counter()
    a_once, b_once = psi.mask_ids(key_a, ids_a), psi.mask_ids(key_b, ids_b)
    steps["first_mask_s"] = time.perf_counter() - started
    started = time.perf_counter()
    a_twice, b_twice = psi.blind(key_b, a_once), psi.blind(key_a, b_once)
    steps["second_mask_s"] = time.perf_counter() - started
    started = time.perf_counter()
    left, _ = psi.match(a_twice, b_twice)
    steps["match_s"] = time.perf_counter() - started
    found = {ids_a[i] for i in left}
    assert found == set(ids_a) & set(ids_b), "PSI disagrees with the set intersection"
    return {"ids_per_party": n, "intersection": len(found), **steps, "total_s": sum(steps.values()),
            "bytes": psi.POINT_BYTES * 3 * n}  # |X| + |Y| + |X| points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--overlap", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/psi.json")
    args = parser.parse_args()
    rows = [measure(n, args.overlap, args.seed) for n in args.sizes]
    print(f"{'ids/party':>10} {'common':>8} {'1st mask s':>10} {'2nd mask s':>10} {'match s':>8} {'total s':>8} {'MB':>7}")
    for r in rows:
        print(f"{r['ids_per_party']:>10} {r['intersection']:>8} {r['first_mask_s']:>10.2f} {r['second_mask_s']:>10.2f} "
              f"{r['match_s']:>8.3f} {r['total_s']:>8.2f} {r['bytes'] / 1e6:>7.2f}")
    import cryptography

    with open(args.out, "w") as f:
        json.dump({"machine": f"{platform.machine()}, {platform.python_version()}, cryptography {cryptography.__version__}",
                   "environment": environment(), "overlap": args.overlap, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
