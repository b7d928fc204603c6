"""Each party of a real run tries to learn what its protocol says it must not, from exactly the
messages it received (a recording transport keeps every request a party got and every reply it
sent), and the statements of ``raysim/vertical/disclosure.py`` reach ``summary.json``."""

from __future__ import annotations

import copy
from collections import defaultdict

import numpy as np
import pytest
from phe import EncryptedNumber

from raysim.api import run
from raysim.scenario.vertical import parse_vertical
from raysim.seeding import Stream, rng
from raysim.sim.bridges import vertical as sim
from raysim.vertical import data, disclosure, lr, psi
from raysim.vertical.netshape import NetShape
from raysim.vertical.party import Party
from tests.vertical.test_scenario import GOOD

SCALE = 2**20  # lr.Encoding(20)


class Recorder:
    """The transport, recording per party what it received (the arguments of its requests) and
    what it sent (its replies): all that party knows besides its own share and secrets."""

    def __init__(self, calls):
        self.calls, self.received, self.sent = calls, defaultdict(list), defaultdict(list)

    def __call__(self, requests):
        replies = self.calls(requests)
        for (name, method, args), reply in zip(requests, replies):
            self.received[name].append((method, args))
            self.sent[name].append((method, reply))
        return replies

    def first(self, box: dict, name: str, method: str):
        return next(value for m, value in box[name] if m == method)


def _lr_run(batch_size: int, max_train: int = 24, hide_gradients: bool = False):
    """Two parties and the coordinator on the breast split, one epoch, recorded."""
    table = data.load_table("breast", seed=0, max_train=max_train, max_test=10)
    shares, _ = data.split(table, [list(range(20, 30)), list(range(20))], label_party=0, overlap=1.0, seed=0)
    parties = {"guest": Party(0, shares[0], seed=0), "host": Party(1, shares[1], seed=0),
               sim.COORDINATOR: lr.Coordinator(512)}
    calls, ledger = Recorder(sim.LocalParties(parties)), sim.VerticalLedger(sim.Network(), sim.HeCost())
    aligned = sim.align(calls, ["guest", "host"], ledger)
    settings = sim.LrSettings(key_bits=512, hide_gradients=hide_gradients)
    list(sim.train_lr(calls, ["guest", "host"], ledger, settings=settings, encrypted=True, epochs=1,
                      batch_size=batch_size, seed=0, train_rows=aligned.train_rows))
    first_batch = sim.batches(0, aligned.train_rows, batch_size, 1)[0]
    labels = parties["guest"]._y("train", first_batch)  # the truth, to score the attacks
    return calls, parties, labels, ledger


@pytest.fixture(scope="module")
def recorded():
    """One recorded run with batches of 8 (fewer rows than either party has columns)."""
    return _lr_run(batch_size=8)


def _host_divides_out_its_own_ciphertexts(calls: Recorder, gradient: str = "lr_gradient",
                                          half: int = SCALE // 2) -> list[int | None]:
    """The host's attack on the first batch: [[d]] / [[u_1 / 4]] = g^m r'^n; with r' = 1 (no
    re-randomisation) this is 1 + m n and m = u_0 / 4 - s / 2 = -s / 2 at w = 0. Returns the
    label it reads per row, None where the quotient is no g^m. With hide_gradients the residual
    comes with ``lr_hidden_update`` as [[4d]], where s / 2 reads 2^(2p + 1) (``half``)."""
    key = calls.first(calls.received, "host", "lr_setup")[1]
    own, _ = calls.first(calls.sent, "host", "lr_quarter_scores")
    _, residual = calls.first(calls.received, "host", gradient)
    found = []
    for mine, theirs in zip(own, residual):
        quotient = theirs.ciphertext(be_secure=False) * pow(mine.ciphertext(be_secure=False), -1, key.nsquare)
        quotient %= key.nsquare
        if (quotient - 1) % key.n:
            found.append(None)
            continue
        m = (quotient - 1) // key.n
        m = m - key.n if m > key.n // 2 else m
        found.append(int(m < 0) if abs(abs(m) - half) <= 1 else None)
    return found


def test_without_rerandomising_the_host_reads_every_label_of_the_first_batch(monkeypatch) -> None:
    """The attack of issue 24 works on the protocol as it was: the control for the next test."""
    monkeypatch.setattr(lr, "rerandomise", lambda ciphertexts, draw, ops: ciphertexts)
    calls, _, labels, _ = _lr_run(batch_size=8)
    assert _host_divides_out_its_own_ciphertexts(calls) == labels.tolist()


def test_the_host_reads_nothing_from_the_rerandomised_residual(recorded) -> None:
    calls, _, labels, ledger = recorded
    assert _host_divides_out_its_own_ciphertexts(calls) == [None] * len(labels)
    # every [[d]] the host got is a ciphertext, and its exponentiation is charged: one per row and batch
    for method, args in calls.received["host"]:
        if method == "lr_gradient":
            assert all(isinstance(c, EncryptedNumber) for c in args[1])
    assert ledger.ops["rerandomise"] == ledger.ops["encrypt"] == 24
    assert ledger.he_seconds == pytest.approx(sim.HeCost().seconds(ledger.ops))
    assert sim.HeCost().rerandomise_s == sim.HeCost().encrypt_s  # the same exponentiation r^n mod n^2


def _own_gradient(calls: Recorder, name: str, index: int, step: int) -> np.ndarray:
    """A party's unmasked gradient of a batch of 8, as the party itself computes it: the
    coordinator's decryption it received and its own masks (redrawn from its own stream)."""
    decrypted = [args[0] for m, args in calls.received[name] if m == "lr_apply"][step - 1]
    masks = lr.draw_masks(rng(0, Stream.VERTICAL_TRAIN, 2, index, step), len(decrypted), lr.Encoding(20))
    return lr.unmask(decrypted, masks, lr.Encoding(20), rows=8)


def test_inherent_the_hosts_own_gradient_gives_a_small_first_batchs_labels(recorded) -> None:
    """Hardy et al.'s protocol hands every party its own gradient; at w = 0 the host's is
    -(1/2h) X_1^T s. With 8 rows and 20 columns it solves for s exactly (disclosure.py says so)."""
    calls, parties, labels, _ = recorded
    first_batch = sim.batches(0, len(parties["host"].train), 8, 1)[0]
    x = parties["host"]._x("train", first_batch).astype(np.float64)  # the host's own rows
    d, *_ = np.linalg.lstsq(x.T, 8 * _own_gradient(calls, "host", 1, 1), rcond=None)
    assert ((d < 0).astype(int) == labels).all() and np.allclose(np.abs(d), 0.5, atol=1e-4)


def test_inherent_the_guests_own_gradient_gives_the_hosts_scores_of_a_small_batch(recorded) -> None:
    """The label party's gradient is (1/h) X_0^T (u_0/4 + u_1/4 - s/2): it knows all but u_1, so
    with 8 rows and 11 columns (intercept included) it solves for the host's scores; batch 2, as
    at w = 0 they are all 0. The truth: the host's [[u_1 / 4]] decrypted with the coordinator's key."""
    calls, parties, _, _ = recorded
    guest, batch = parties["guest"], sim.batches(0, len(parties["guest"].train), 8, 1)[1]
    w = -0.15 * _own_gradient(calls, "guest", 0, 1)  # its weights after the first step from w = 0
    x = guest._design("train", batch)
    known = x @ w / 4 - lr.signs(guest._y("train", batch)) / 2
    host_quarter, *_ = np.linalg.lstsq(x.T, 8 * _own_gradient(calls, "guest", 0, 2) - x.T @ known, rcond=None)
    sent = [value[0] for m, value in calls.sent["host"] if m == "lr_quarter_scores"][1]
    truth, _ = parties[sim.COORDINATOR].decrypt(sent)
    assert np.abs(host_quarter).max() > 1e-3
    np.testing.assert_allclose(host_quarter, np.array(truth, dtype=float) / SCALE, atol=1e-5)


def test_the_coordinator_decrypts_only_masked_gradients(recorded) -> None:
    """What the coordinator decrypts is the gradient sum plus a uniform mask below 2^80, in units
    where the sums are below 2^50: the decryption tells it nothing about the sign or size of a
    gradient."""
    calls, _, _, _ = recorded
    assert {m for m, _ in calls.received[sim.COORDINATOR]} == {"public", "decrypt"}
    replies = [value for m, value in calls.sent[sim.COORDINATOR] if m == "decrypt"]
    decrypted = replies[1][0]  # the guest's, then the host's, per batch: the host's first
    true = np.rint(8 * _own_gradient(calls, "host", 1, 1) * SCALE**2)
    assert len(decrypted) == len(true) == 20 and np.abs(true).max() < 2**50
    assert min(abs(int(v) - int(t)) for v, t in zip(decrypted, true)) > 2**50
    assert (np.array(decrypted, dtype=float) > 0).all()  # negative gradients show no sign


def test_the_guest_gets_the_hosts_scores_only_as_ciphertexts_while_training(recorded) -> None:
    calls, _, _, _ = recorded
    quarters = [args[1][0] for m, args in calls.received["guest"] if m == "lr_residual"]
    assert quarters and all(isinstance(c, EncryptedNumber) for q in quarters for c in q)
    plain = {m for m, args in calls.received["guest"]
             if any(isinstance(a, list) and a and isinstance(a[0], np.ndarray) for a in args)}
    assert plain == {"lr_evaluate"}  # the host's scores in clear: only to be scored, as disclosure.py states


def test_splitnn_gradients_split_each_batch_into_the_two_classes() -> None:
    """The direction attack on SplitNN (Li et al. 2021): with two classes and a linear top each
    row's dL/dh is (p_1 - y) times one vector, so its sign against the first row's splits the batch."""
    table = data.load_table("synthetic", seed=4, rows=120, columns=6)
    shares, _ = data.split(table, [[0, 1, 2], [3, 4, 5]], label_party=0, overlap=1.0, seed=4)
    parties = {"guest": Party(0, shares[0], seed=4), "host": Party(1, shares[1], seed=4)}
    calls, ledger = Recorder(sim.LocalParties(parties)), sim.VerticalLedger(sim.Network(), sim.HeCost())
    aligned = sim.align(calls, ["guest", "host"], ledger)
    list(sim.train_splitnn(calls, ["guest", "host"], ledger, shape=NetShape(hidden=8, embedding=4), classes=2,
                           epochs=1, batch_size=16, seed=4, train_rows=aligned.train_rows))
    grads = [args[0] for m, args in calls.received["host"] if m == "nn_backward"]
    assert len(grads) == len(sim.batches(4, aligned.train_rows, 16, 1)) > 1
    for batch, grad in zip(sim.batches(4, aligned.train_rows, 16, 1), grads):
        side = (grad @ grad[0] > 0).astype(int)
        labels = parties["guest"]._y("train", batch)
        assert (side == labels).all() or (side == 1 - labels).all()


def test_psi_gives_the_host_the_set_size_and_the_intersection_only() -> None:
    """The host's PSI messages: the guest's ids masked by the guest's scalar, then the positions
    of its own rows in the intersection. Even guessing every id the guest holds, hashing and
    masking them with its own scalar matches none of the guest's values."""
    table = data.load_table("synthetic", seed=5, rows=100, columns=4)
    shares, _ = data.split(table, [[0, 1], [2, 3]], label_party=0, overlap=0.6, seed=5)
    parties = {"guest": Party(0, shares[0], seed=5), "host": Party(1, shares[1], seed=5)}
    calls = Recorder(sim.LocalParties(parties))
    sim.align(calls, ["guest", "host"], sim.VerticalLedger(sim.Network(), sim.HeCost()))
    guest_points = calls.first(calls.received, "host", "psi_second")[0]
    assert len(guest_points) == len(set(shares[0].ids.tolist()))  # the guest's set size
    positions = calls.first(calls.received, "host", "psi_align")[0]
    common = set(shares[0].ids.tolist()) & set(shares[1].ids.tolist())
    assert set(parties["host"]._share.ids[parties["host"]._rows[positions]].tolist()) == common
    guesses = shares[0].ids.tolist()  # the worst case: the host guesses every id the guest holds
    hashed = [psi.hash_to_point(i) for i in guesses]
    tried = set(hashed) | set(psi.blind(parties["host"]._key, hashed))
    assert not tried & set(guest_points)


@pytest.mark.parametrize("trainer", ["paillier_lr", "plain_lr", "splitnn"])
def test_summary_states_what_each_party_learns(tmp_path, trainer) -> None:
    table = copy.deepcopy(GOOD)
    table["vertical"].update(trainer=trainer, max_train=30, max_test=20, lr={"key_bits": 512})
    summary = run(parse_vertical(table), results_root=tmp_path).summary
    statement = summary["disclosure"]
    assert statement == disclosure.statement(trainer, ["guest", "host"], sim.COORDINATOR)
    assert set(statement["psi"]) == {"guest", "host"} and "assumes" in statement
    expected = {"guest", "host"} | ({sim.COORDINATOR} if trainer == "paillier_lr" else set())
    assert set(statement[trainer]) == expected
    for party in statement[trainer].values():
        assert party["learns"] and party["does_not_learn"]
    if trainer == "paillier_lr":
        assert "every label of that batch" in " ".join(statement[trainer]["host"]["learns"])


# --- [vertical.lr] hide_gradients = true: the same attacks on the variant with encrypted weights ---

HIDDEN_METHODS = {"lr_setup", "lr_quarter_scores", "lr_hidden_update", "lr_hidden_apply", "lr_encrypted_scores"}


@pytest.fixture(scope="module")
def hidden():
    """The recorded run of ``recorded`` (batches of 8) with hide_gradients."""
    return _lr_run(batch_size=8, hide_gradients=True)


def _public_or_ciphertext(value, batches: list[np.ndarray]) -> bool:
    """A ciphertext, the public key, a setting, a part's name, or a batch of the shared order."""
    from phe import PaillierPublicKey

    if isinstance(value, (list, tuple)):
        return all(_public_or_ciphertext(v, batches) for v in value)
    if isinstance(value, np.ndarray):
        return any(len(value) == len(b) and (value == b).all() for b in batches)
    return isinstance(value, (EncryptedNumber, PaillierPublicKey, bool, int, float, str))


def test_hidden_every_message_the_host_receives_is_a_ciphertext_or_public(hidden) -> None:
    """No plaintext derived from the labels or from any weight reaches the host: its first-batch
    gradient attack (``test_inherent_the_hosts_own_gradient_...``) has no gradient to solve with,
    and the host holds no plaintext weight whose change would be one."""
    calls, parties, labels, _ = hidden
    order = sim.batches(0, len(parties["host"].train), 8, 1)
    training = [(m, args) for m, args in calls.received["host"] if m.startswith("lr_")]
    assert {m for m, _ in training} == HIDDEN_METHODS
    for method, args in training:
        assert _public_or_ciphertext(args, order), method
    applied = [args[0] for m, args in training if m == "lr_hidden_apply"]
    assert len(applied) == len(order) and all(isinstance(c, EncryptedNumber) for a in applied for c in a)
    assert parties["host"].w is None and parties["guest"].w is None
    # the divide-out attack of issue 24 on [[4d]]: nothing
    assert _host_divides_out_its_own_ciphertexts(calls, "lr_hidden_update", 2 * SCALE**2) == [None] * len(labels)


def test_hidden_the_guest_never_sees_a_gradient_or_the_hosts_scores(hidden) -> None:
    """The guest's attack on the host's scores needs its own gradient: under hide_gradients all it
    receives while training are ciphertexts, and after the epoch the total scores z of the rows
    (decrypted under its mask), which are u_0 + u_1 and never u_1 alone: it does not know u_0."""
    calls, parties, _, _ = hidden
    order = sim.batches(0, len(parties["guest"].train), 8, 1)
    training = [(m, args) for m, args in calls.received["guest"] if m != "lr_evaluate_masked" and m.startswith("lr_")]
    assert {m for m, _ in training} == {"lr_setup", "lr_residual", "lr_hidden_update", "lr_hidden_apply",
                                        "lr_masked_total"}
    for method, args in training:
        assert _public_or_ciphertext(args, order), method
    # the only plaintext: the total score of each test row, z = u_0 + u_1 (the truth from the key)
    coordinator, guest = parties[sim.COORDINATOR], parties["guest"]
    decrypted = [args[1] for m, args in calls.received["guest"] if m == "lr_evaluate_masked" and args[0] == "test"][0]
    z = lr.unmask_scores(decrypted, guest._score_masks["test"], lr.Encoding(20))
    weights = {n: np.array(coordinator.decrypt(parties[n].w_encrypted)[0], dtype=float) / SCALE
               for n in ("guest", "host")}
    u0, u1 = guest._design("test") @ weights["guest"], parties["host"]._design("test") @ weights["host"]
    np.testing.assert_allclose(z, u0 + u1, atol=1e-4)
    assert np.abs(u1).max() > 1e-2 and np.abs(z - u1).max() > 1e-2


def test_hidden_the_coordinator_sees_only_masked_values(hidden) -> None:
    """What it decrypts is a weight update or a total score plus a uniform mask 2^40 times the
    value's bound: every decryption is positive and far from the value it hides."""
    calls, parties, _, ledger = hidden
    assert {m for m, _ in calls.received[sim.COORDINATOR]} == {"public", "rescale", "decrypt"}
    coordinator = parties[sim.COORDINATOR]
    update_bound, score_bound = 2 ** (5 * 20 + 16), 2 ** (2 * 20 + 16)
    for method, args in calls.received[sim.COORDINATOR]:
        if method == "public":
            continue
        values, _ = coordinator.decrypt(args[0])
        bound = update_bound if method == "rescale" else score_bound
        assert min(values) > bound and max(values) < bound * 2**lr.MARGIN_BITS
    # the host's first update (requests go guest, host), unmasked with its own masks: within the bound
    host_first = [args[0] for m, args in calls.received[sim.COORDINATOR] if m == "rescale"][1]
    masks = lr.wide_masks(rng(0, Stream.VERTICAL_TRAIN, 4, 1, 1), 20, lr.update_bits(lr.Encoding(20)))
    true = [v - int(m) for v, m in zip(coordinator.decrypt(host_first)[0], masks)]
    assert len(true) == 20 and 0 < max(abs(t) for t in true) < 2 ** (5 * 20)
    # every operation is charged, the coordinator's decryptions and fresh encryptions included
    assert ledger.he_seconds == pytest.approx(sim.HeCost().seconds(ledger.ops))


def test_hidden_summary_states_what_each_party_learns(tmp_path) -> None:
    table = copy.deepcopy(GOOD)
    table["vertical"].update(trainer="paillier_lr", max_train=30, max_test=20,
                             lr={"key_bits": 512, "hide_gradients": True})
    summary = run(parse_vertical(table), results_root=tmp_path).summary
    assert summary["hide_gradients"] is True
    statement = summary["disclosure"]
    assert statement == disclosure.statement("paillier_lr", ["guest", "host"], sim.COORDINATOR, True)
    assert statement["paillier_lr"]["host"] == disclosure.HIDDEN[disclosure.OTHER]
    assert "encrypted" in summary["privacy"] and summary["test_auc"] == summary["test_auc"]
