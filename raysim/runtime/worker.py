"""The client worker: hosts many logical clients, one model instance reused for all of them.

The same class runs in-process (``LocalExecutor``) and as a Ray actor (``RayExecutor``). It
holds a read-only view of the whole training set (shared through Ray's object store, not
copied) and every client's shard as an index array, so any worker can train any client and
the runtime is free to balance each round's work across workers. An image data set stays uint8
pixels there; the rows a client trains on or a slice is scored on are standardised as they are
read (``data/pixels.py``: through a lookup table of numpy's results, so the same bits).
"""

from __future__ import annotations

import time
import traceback
import warnings
from typing import Mapping

import numpy as np
import torch

from raysim.algorithms.personal import local_mask
from raysim.algorithms.sgd import SGDConfig
from raysim.data.pixels import PixelScale
from raysim.models.params import FlatModel
from raysim.models.spec import ModelSpec
from raysim.models.algorithm import ClientSettings, LocalTask, algorithm_name, build_algorithm, checked
from raysim.models.learning_task import build_task, centred
from raysim.models.training import evaluate, train_locally
from raysim.seeding import Stream, derive_seed
from raysim.sim.kernel.evaluation import EvalCounts, EvalSlice, FineTune
from raysim.sim.kernel.tasks import ClientError, ClientIndices, ClientResult, TrainingPlan, TrainTask


class ClientWorker:
    def __init__(
        self,
        *,
        model: ModelSpec,
        plan: TrainingPlan,
        train_x: np.ndarray,
        train_y: np.ndarray,
        shards: ClientIndices,
        test_x: np.ndarray | None = None,
        test_y: np.ndarray | None = None,
        pixels: PixelScale | None = None,
        device: str = "cpu",
        threads: int = 1,
    ):
        torch.set_num_threads(max(1, threads))
        self.device = torch.device(device)
        self._pixel_table = None if pixels is None else torch.as_tensor(pixels.lookup_table(), device=self.device)
        self._channel_offsets = None if pixels is None or len(pixels.mean) == 1 else (
            256 * torch.arange(len(pixels.mean), dtype=torch.int32, device=self.device).reshape(pixels.channel_shape()))
        self.plan = plan
        self.shards = shards
        with warnings.catch_warnings():
            # Arrays from Ray's object store are read-only; training never writes to them.
            warnings.simplefilter("ignore", UserWarning)
            self.x = torch.as_tensor(train_x).to(self.device)
            self.y = torch.as_tensor(train_y).to(self.device)
            self.test = None if test_x is None else (torch.as_tensor(test_x).to(self.device),
                                                     torch.as_tensor(test_y).to(self.device))
        self.model = FlatModel(model.build(), device=self.device)
        self.algorithm = build_algorithm(plan.algorithm, plan.algorithm_options)
        # a regression's evaluation sums are taken about the training targets' mean (learning_task.py)
        self.learning_task = centred(build_task(plan.task, plan.task_options), train_y)
        self._head_mask = local_mask(self.model.layout, plan.local_layers) if plan.local_layers else None

    def train(self, params: np.ndarray, groups: list[list[TrainTask]]) -> list[ClientResult]:
        """Trains every group's clients from ``params`` (a group of several as one batch of
        models, when the algorithm has ``train_batch``); one result per task, groups in order."""
        base = torch.as_tensor(np.asarray(params, dtype=np.float32)).to(self.device)
        results: list[ClientResult] = []
        for group in groups:
            batched = len(group) > 1 and hasattr(self.algorithm, "train_batch")
            for part in ([group] if batched else [[t] for t in group]):
                results += self._train(base, part)
        return results

    def _train(self, base: torch.Tensor, group: list[TrainTask]) -> list[ClientResult]:
        """Runs the client algorithm on ``group`` (one task, or a batch for ``train_batch``) and
        checks what it returned; a failure or a malformed result is a ClientError naming the
        algorithm and the client."""
        started = time.perf_counter()
        try:
            self.model.load(base)
            local = [self._local_task(base, task) for task in group]
            outcomes = (self.algorithm.train_batch(local) if len(group) > 1
                        else [self.algorithm.train(local[0])])
            self.model.rebind()
            results = [checked(outcome, task) for outcome, task in zip(outcomes, local)]
        except Exception as exc:
            ids = ", ".join(str(t.client_id) for t in group)
            together = f"(trained together with clients {ids})\n" if len(group) > 1 else ""
            raise ClientError(group[0].client_id, group[0].task_id,
                              f"{together}{algorithm_name(self.algorithm)}: {traceback.format_exc()}") from exc
        wall = (time.perf_counter() - started) / len(group)
        return [ClientResult(task_id=t.task_id, client_id=t.client_id, num_samples=r.examples,
                             steps=r.steps, mean_loss=float(r.loss), delta=r.delta, wall_s=wall,
                             state=None if r.state is None else dict(r.state), extras=dict(r.extras),
                             metrics={k: float(v) for k, v in r.metrics.items()})
                for r, t in zip(results, group)]

    def _local_task(self, base: torch.Tensor, task: TrainTask) -> LocalTask:
        x, y = self._data(task)
        sgd = self.plan.sgd
        return LocalTask(
            model=self.model.module, flat=self.model, x=x, y=y, start=base, state=_read_only(task.state),
            server=_read_only(task.server), client_id=task.client_id, round=task.round,
            settings=ClientSettings(epochs=task.epochs, batch_size=self.plan.batch_size, sgd=sgd),
            generator=self._generator(task), loss=self.learning_task.loss,
            batched_loss=getattr(self.learning_task, "batched_loss", None),
        )

    def _inputs(self, rows: torch.Tensor) -> torch.Tensor:
        """Model inputs from rows of the stored examples: uint8 pixels standardised through the
        data set's lookup table (``PixelScale.lookup_table``), or the rows themselves."""
        if self._pixel_table is None:
            return rows
        index = rows.to(torch.int32)
        if self._channel_offsets is not None:
            index += self._channel_offsets
        return self._pixel_table.index_select(0, index.flatten()).view(rows.shape)

    def _data(self, task: TrainTask) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(self.shards.of(task.client_id), device=self.device)
        labels = self.y[idx]
        if task.client_id in self.plan.flipped_labels:
            labels = self.plan.num_classes - 1 - labels
        return self._inputs(self.x[idx]), labels

    def _generator(self, task: TrainTask) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(self.plan.seed, Stream.BATCHES, task.seed_key, task.client_id))

    def evaluate(self, params: np.ndarray, slices: list[EvalSlice]) -> list[EvalCounts]:
        """Scores ``params`` (with a slice's head, when it has one) on each slice."""
        counts = []
        for part in slices:
            weights = params
            if part.head is not None:
                weights = np.array(params, dtype=np.float32)
                weights[self._head_mask] = part.head
            if part.finetune is not None:
                weights = self._finetuned(weights, part.finetune)
            self.model.load(weights)
            x, y = self.test if part.split == "test" else (self.x, self.y)
            idx = torch.as_tensor(part.indices, device=self.device)
            sums = evaluate(self.model, x[idx], y[idx], task=self.learning_task, inputs=self._inputs)
            counts.append(EvalCounts(count=len(part.indices), sums=sums))
        return counts

    def evaluate_models(self, models: list[np.ndarray], slices: list[EvalSlice]) -> list[list[EvalCounts]]:
        """Scores several models on the same slices in one call (coalition models, valued
        together so a round's utility evaluations cost one remote call per worker)."""
        return [self.evaluate(params, slices) for params in models]

    def _finetuned(self, params: np.ndarray, tune: FineTune) -> np.ndarray:
        """Personalised evaluation's adaptation: ``tune.steps`` SGD steps on minibatches drawn with
        replacement from the client's training examples, keyed by (seed, round, client), so the
        personalised score does not depend on which worker computed it."""
        shard = torch.as_tensor(self.shards.of(tune.client), device=self.device)
        size = self.plan.batch_size or len(shard)
        generator = torch.Generator().manual_seed(derive_seed(self.plan.seed, Stream.EVALUATION, tune.round, tune.client))
        picks = shard[torch.randint(len(shard), (tune.steps * size,), generator=generator).to(self.device)]
        base = torch.as_tensor(np.asarray(params, dtype=np.float32)).to(self.device)
        outcome = train_locally(self.model, self._inputs(self.x[picks]), self.y[picks], base=base, epochs=1,
                                batch_size=size, sgd=SGDConfig(lr=tune.lr), generator=generator,
                                loss=self.learning_task.loss)
        return (base + outcome.delta).cpu().numpy()


def _read_only(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Read-only views of a task's state and broadcast arrays: in-process they are the per-client
    store's and the strategy's own arrays, on an actor copies, so an algorithm changing one in
    place would change the store under the local executor only; here it raises under both (an
    algorithm returns its new state instead)."""
    views = {}
    for name, array in arrays.items():
        views[name] = np.asarray(array).view()
        views[name].flags.writeable = False
    return views
