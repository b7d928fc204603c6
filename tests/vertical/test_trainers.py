"""The trainers against their references: Paillier LR = plaintext LR (to the fixed-point
rounding), SplitNN = the same network trained centrally, and the bytes each one is charged."""

from __future__ import annotations

import numpy as np
import pytest

from raysim.sim.bridges import vertical as sim
from raysim.vertical import data, lr, reference
from raysim.vertical.netshape import NetShape, init_seed
from raysim.vertical.party import Party


def _run_lr(encrypted: bool, key_bits: int = 512, epochs: int = 1, hide_gradients: bool = False):
    table = data.load_table("breast", seed=0, max_train=60, max_test=40)
    shares, _ = data.split(table, [list(range(20, 30)), list(range(20))], label_party=0, overlap=1.0, seed=0)
    parties = {"guest": Party(0, shares[0], seed=0), "host": Party(1, shares[1], seed=0)}
    if encrypted:
        parties[sim.COORDINATOR] = lr.Coordinator(key_bits)
    calls, ledger = sim.LocalParties(parties), sim.VerticalLedger(sim.Network(), sim.HeCost())
    aligned = sim.align(calls, ["guest", "host"], ledger)
    settings = sim.LrSettings(key_bits=key_bits, hide_gradients=hide_gradients)
    rows = list(sim.train_lr(calls, ["guest", "host"], ledger, settings=settings, encrypted=encrypted,
                             epochs=epochs, batch_size=32, seed=0, train_rows=aligned.train_rows))
    return parties, rows, ledger


def test_paillier_lr_matches_the_plaintext_trainer() -> None:
    plain, plain_rows, _ = _run_lr(False)
    secret, secret_rows, ledger = _run_lr(True)
    for name in ("guest", "host"):
        np.testing.assert_allclose(secret[name].w, plain[name].w, atol=1e-6)
    assert secret_rows[-1]["test_auc"] == pytest.approx(plain_rows[-1]["test_auc"])
    # hosts' scores, the residual, both gradients, each as 128-byte ciphertexts at 512 bits
    assert lr.ciphertext_bytes(512) == 128
    # one encryption per host score; one decryption per column (20 host, 10 guest + intercept) and batch
    assert ledger.ops["encrypt"] == 60 and ledger.ops["decrypt"] == 31 * 2
    assert secret_rows[-1]["he_seconds"] == pytest.approx(sim.HeCost().seconds(ledger.ops))
    assert secret_rows[-1]["bytes_total"] > 2 * plain_rows[-1]["bytes_total"]  # PSI's bytes are in both
    assert plain_rows[-1]["he_seconds"] == 0.0


def test_hidden_paillier_lr_matches_the_plaintext_trainer() -> None:
    """hide_gradients: the weights, held only encrypted, decrypt (with the coordinator's key, as
    only this test may) to plain_lr's within 1e-4: each rescale rounds to a unit of 2^-20."""
    plain, plain_rows, _ = _run_lr(False, epochs=2)
    secret, secret_rows, ledger = _run_lr(True, epochs=2, hide_gradients=True)
    coordinator = secret[sim.COORDINATOR]
    for name in ("guest", "host"):
        assert secret[name].w is None
        w = np.array(coordinator.decrypt(secret[name].w_encrypted)[0], dtype=float) / 2**20
        np.testing.assert_allclose(w, plain[name].w, atol=1e-4)
        assert np.abs(plain[name].w).max() > 1e-2
    for column in ("test_auc", "test_accuracy", "test_loss", "train_loss"):
        assert secret_rows[-1][column] == pytest.approx(plain_rows[-1][column], abs=1e-4)
    # per batch (2 per epoch): a rescale per weight (31), a fresh encryption each; the initial [[0]]s;
    # per epoch every train and test row's total score decrypted
    batches = 4
    assert ledger.ops["encrypt"] == 31 + 31 * batches
    assert ledger.ops["decrypt"] == 31 * batches + 2 * (60 + 40)
    assert secret_rows[-1]["he_seconds"] == pytest.approx(sim.HeCost().seconds(ledger.ops))
    assert secret_rows[-1]["bytes_total"] > plain_rows[-1]["bytes_total"]


def test_rescaling_rounds_to_a_unit_in_the_last_place() -> None:
    """round((u + m) / 2^b) - round(m / 2^b) is within 1 of u / 2^b for any mask m."""
    draw, bits = np.random.default_rng(1), 12
    for u in (-5000, -2048, -1, 0, 1, 2047, 2048, 123456):
        for m in lr.wide_masks(draw, 50, 30):
            got = lr.rounded_shift([u + m], bits)[0] - lr.rounded_shift([m], bits)[0]
            assert abs(got - u / 2**bits) <= 1


def test_paillier_round_trip_and_masked_gradient() -> None:
    coordinator, enc = lr.Coordinator(512), lr.Encoding(20)
    values = np.array([0.5, -1.25, 3.0])
    ops = __import__("collections").Counter()
    cts = lr.encrypt(coordinator.public(), enc, values, ops)
    x = np.array([[1.0, -2.0], [0.5, 0.0], [-1.0, 4.0]])
    masks = lr.draw_masks(np.random.default_rng(0), 2, enc)
    decrypted, _ = coordinator.decrypt(lr.encrypted_gradient(enc, x, cts, masks, ops))
    assert all(d != 0 for d in decrypted)
    np.testing.assert_allclose(lr.unmask(decrypted, masks, enc, rows=3), lr.gradient(x, values), atol=1e-6)


@pytest.mark.parametrize("num_parties", [2, 3])
def test_splitnn_equals_the_central_network(num_parties) -> None:
    table = data.load_table("synthetic", seed=2, rows=300, columns=9)
    columns = [list(range(k, 9, num_parties)) for k in range(num_parties)]
    shares, ids = data.split(table, columns, label_party=0, overlap=0.9, seed=2)
    names = [f"p{k}" for k in range(num_parties)]
    parties = {n: Party(k, s, seed=2) for k, (n, s) in enumerate(zip(names, shares))}
    calls, ledger = sim.LocalParties(parties), sim.VerticalLedger(sim.Network(), sim.HeCost())
    aligned = sim.align(calls, names, ledger)
    before = dict(ledger.received)
    shape = NetShape(hidden=8, embedding=4)
    rows = list(sim.train_splitnn(calls, names, ledger, shape=shape, classes=2, epochs=2, batch_size=16, seed=2,
                                  train_rows=aligned.train_rows))
    label = parties["p0"]
    person = {int(i): n for n, i in enumerate(ids)}
    people = np.array([person[int(i)] for i in label.aligned_ids()])
    parts = [table.features[people][:, c].reshape(len(people), -1) for c in columns]
    central = reference.split_network(
        [p[label.train] for p in parts], table.labels[people][label.train], [p[label.test] for p in parts],
        table.labels[people][label.test], shape=shape, classes=2,
        seeds=[init_seed(2, k) for k in range(num_parties + 1)],
        batches=[sim.batches(2, aligned.train_rows, 16, e) for e in (1, 2)])
    for row, ref in zip(rows, central):
        assert row["test_loss"] == pytest.approx(ref["loss"], abs=1e-5)
        assert row["test_accuracy"] == pytest.approx(ref["accuracy"])
    # per batch, each passive party's embeddings up and their gradients down (B x 4 float32), then
    # every row's embeddings up to be scored, per epoch
    floats = 4 * 4
    for n in names[1:]:
        assert ledger.received[n] - before[n] == 2 * aligned.train_rows * floats
    scored = aligned.train_rows + aligned.intersection
    assert ledger.received["p0"] - before["p0"] == 2 * scored * floats * (num_parties - 1)


def test_paillier_lr_with_two_hosts_matches_plaintext() -> None:
    """With several hosts the label party sums every host's [[u_k / 4]] into [[d]] (with
    hide_gradients every host's [[u_k]], the weights decrypted here with the coordinator's key)."""
    table = data.load_table("synthetic", seed=3, rows=60, columns=6)
    shares, _ = data.split(table, [[0, 1], [2, 3], [4, 5]], label_party=0, overlap=1.0, seed=3)
    names = ["a", "b", "c"]
    weights = []
    for encrypted, hidden in ((False, False), (True, False), (True, True)):
        parties = {n: Party(k, s, seed=3) for k, (n, s) in enumerate(zip(names, shares))}
        if encrypted:
            parties[sim.COORDINATOR] = lr.Coordinator(512)
        calls, ledger = sim.LocalParties(parties), sim.VerticalLedger(sim.Network(), sim.HeCost())
        aligned = sim.align(calls, names, ledger)
        list(sim.train_lr(calls, names, ledger, settings=sim.LrSettings(key_bits=512, hide_gradients=hidden),
                          encrypted=encrypted, epochs=1, batch_size=0, seed=3, train_rows=aligned.train_rows))
        weights.append(np.concatenate([
            np.array(parties[sim.COORDINATOR].decrypt(parties[n].w_encrypted)[0], dtype=float) / 2**20 if hidden
            else parties[n].w for n in names]))
    np.testing.assert_allclose(weights[1], weights[0], atol=1e-6)
    np.testing.assert_allclose(weights[2], weights[0], atol=1e-4)
    assert np.abs(weights[0]).max() > 0
