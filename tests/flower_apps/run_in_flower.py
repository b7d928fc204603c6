"""Run a Flower app on Flower's own in-process machinery, without Ray (a test helper).

``run(server_app, client_app, num_nodes, run_config)`` calls the ``ServerApp`` with a
minimal :class:`flwr.serverapp.grid.Grid` that hands every message straight to the
``ClientApp`` in this process. It does what Flower's simulation does around the apps
(``flwr/simulation/run_simulation.py``, ``flwr/superlink/grid/inmemory_grid.py``,
``flwr/server/superlink/fleet/vce/vce_api.py`` and the in-memory LinkState):

- the ServerApp process's ``TaskIdentity`` (task 1, the run, the SuperLink node) is set,
  as ``Message(...)`` needs it for instruction messages;
- the ServerApp gets ``Context(run_id, node_id=0, node_config={}, state=RecordDict(),
  run_config)``;
- each node has one ``Context`` kept across rounds, with ``node_config``
  ``{"partition-id": p, "num-partitions": N}`` and a copy of ``run_config``;
- on push, the grid gives each instruction message a ``message_id`` (uuid4) and checks it
  as ``InMemoryGrid`` and the LinkState do; on delivery, ``delivered_at`` is set (as the
  LinkState's ``get_message_ins`` does) on a copy of the message (the wire);
- a ClientApp exception becomes an ``Error`` reply (``CLIENT_APP_RAISED_EXCEPTION``), as
  the simulation's worker makes it; every reply is given a ``message_id`` (uuid4), is
  validated as the LinkState's ``store_message_res`` does, and gets ``delivered_at`` when
  pulled.

Node ids are ``NODE_ID_OFFSET + partition_id``: not 1..N, since node id 1 is Flower's
``SUPERLINK_NODE_ID`` (the server side's own id) and Flower rejects replies from it.
ClientApp errors and invalid replies are collected and raised by ``run`` at the end.
"""

from __future__ import annotations

import copy
import threading
import traceback
from collections.abc import Iterable
from uuid import uuid4

from flwr.app import Context, Message, RecordDict
from flwr.app.error import Error
from flwr.common.constant import (
    MESSAGE_TTL_TOLERANCE,
    NUM_PARTITIONS_KEY,
    PARTITION_ID_KEY,
    SUPERLINK_NODE_ID,
    ErrorCode,
)
from flwr.server.utils.validator import validate_message
from flwr.serverapp.grid import Grid
from flwr.supercore.date import now
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

NODE_ID_OFFSET = 1000
RUN_ID = 4242


class InProcessGrid(Grid):
    """A Grid that runs the ClientApp in this process for every message it pushes."""

    def __init__(self, client_app, num_nodes: int, run_config: dict, run: Run) -> None:
        self._client_app = client_app
        self._run = run
        self._run_config = dict(run_config)
        self.contexts: dict[int, Context] = {
            NODE_ID_OFFSET + partition_id: Context(
                run_id=run.run_id,
                node_id=NODE_ID_OFFSET + partition_id,
                node_config={PARTITION_ID_KEY: partition_id, NUM_PARTITIONS_KEY: num_nodes},
                state=RecordDict(),
                run_config=dict(run_config),
            )
            for partition_id in range(num_nodes)
        }
        self._replies: dict[str, Message] = {}  # instruction message id -> reply
        self._lock = threading.RLock()  # the legacy server pushes from several threads
        self.replies: list[Message] = []  # every reply pulled, in order
        self.errors: list[str] = []  # ClientApp exceptions and invalid messages

    # --- Grid API --------------------------------------------------------------------

    def set_run(self, run: Run) -> None:
        if not isinstance(run, Run):
            raise TypeError(f"`run` must be an instance of Run, got {type(run).__name__}")
        self._run = run

    @property
    def run(self) -> Run:
        return Run(**vars(self._run))

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        msg_ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = str(uuid4())  # as InMemoryGrid does
            self._check_instruction(msg)
            with self._lock:
                self._replies[msg.metadata.message_id] = self._deliver(msg)
            msg_ids.append(msg.metadata.message_id)
        return msg_ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        out = []
        with self._lock:
            for msg_id in message_ids:
                reply = self._replies.pop(msg_id, None)
                if reply is not None:
                    reply.metadata.delivered_at = now().isoformat()
                    self.replies.append(reply)
                    out.append(reply)
        return out

    def send_and_receive(self, messages, *, timeout=None) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))

    # --- what the SuperLink / SuperNode side does ---------------------------------------

    def _check_instruction(self, msg: Message) -> None:
        meta = msg.metadata
        errors = validate_message(msg, is_reply_message=False)
        if meta.run_id != self._run.run_id:
            errors.append(f"run_id {meta.run_id} is not the run's {self._run.run_id}")
        if meta.dst_node_id not in self.contexts:
            errors.append(f"unknown destination node {meta.dst_node_id}")
        if errors:
            raise ValueError(f"Invalid instruction message {msg.metadata}: {errors}")

    def _deliver(self, msg: Message) -> Message | None:
        """Run the ClientApp on a copy of ``msg`` (as received by the node); the reply."""
        received = copy.deepcopy(msg)
        received.metadata.delivered_at = now().isoformat()
        context = self.contexts[msg.metadata.dst_node_id]
        try:
            reply = self._client_app(message=received, context=context)
        except Exception as ex:  # pylint: disable=broad-exception-caught
            self.errors.append(traceback.format_exc())
            reason = str(type(ex)) + ":<'" + str(ex) + "'>"
            reply = Message(
                Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason),
                reply_to=received,
            )
        if context.run_config != self._run_config:
            self.errors.append(f"node {context.node_id} modified its Context.run_config")
        if not isinstance(reply, Message):
            self.errors.append(f"ClientApp returned {type(reply).__name__}, not a Message")
            return None
        reply.metadata.__dict__["_message_id"] = str(uuid4())  # as the vce worker does
        problems = self._check_reply(reply, msg)
        if problems:
            self.errors.append(f"Invalid reply {reply.metadata}: {problems}")
            return None
        return reply

    @staticmethod
    def _check_reply(reply: Message, ins: Message) -> list[str]:
        problems = validate_message(reply, is_reply_message=True)
        res, req = reply.metadata, ins.metadata
        if res.reply_to_message_id != req.message_id:
            problems.append("reply_to_message_id is not the instruction's message_id")
        if res.src_node_id != req.dst_node_id:
            problems.append("src_node_id is not the instruction's dst_node_id")
        if res.run_id != req.run_id:
            problems.append("run_id is not the instruction's")
        if res.message_type != req.message_type:
            problems.append("message_type is not the instruction's")
        max_ttl = req.created_at + req.ttl - res.created_at
        if res.ttl - max_ttl > MESSAGE_TTL_TOLERANCE:
            problems.append("ttl exceeds the instruction's expiry")
        return problems


def run(server_app, client_app, num_nodes: int, run_config: dict, *, replies=None) -> None:
    """Run ``server_app`` against ``num_nodes`` in-process nodes running ``client_app``.

    ``replies``, if a list, receives every reply message the ServerApp pulled. Raises
    ``RuntimeError`` after the run if any ClientApp raised or sent an invalid reply.
    """
    run_info = Run.create_empty(run_id=RUN_ID)
    run_info.primary_task_id = 1
    run_info.override_config = dict(run_config)
    grid = InProcessGrid(client_app, num_nodes, run_config, run_info)
    grid.set_run(run_info)
    server_context = Context(
        run_id=RUN_ID, node_id=0, node_config={}, state=RecordDict(), run_config=dict(run_config)
    )
    saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id = 1
    TaskIdentity.run_id = RUN_ID
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    try:
        server_app(grid=grid, context=server_context)
    finally:
        TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = saved
        if replies is not None:
            replies.extend(grid.replies)
    if grid.errors:
        raise RuntimeError(
            f"{len(grid.errors)} ClientApp error(s); the first:\n{grid.errors[0]}"
        )
