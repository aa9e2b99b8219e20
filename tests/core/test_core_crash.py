"""A saving process killed with SIGKILL at random moments leaves only loadable checkpoints."""

import os
import pathlib
import queue
import random
import subprocess
import sys
import threading
import time

import pytest
import torch

from recoverkit import Checkpointer, ckpt_recency

SAVER = pathlib.Path(__file__).with_name("crash_saver.py")
TENSOR_ELEMENTS = 256 * 1024  # 4 tensors of 1 MiB each per checkpoint
LINE_TIMEOUT_S = 120  # generous, so a loaded CI machine does not fail the test


class SaverProcess:
    """The forking saver process and the lines it and its children write."""

    def __init__(self, checkpoints_dir):
        self.process = subprocess.Popen(
            [sys.executable, str(SAVER), str(checkpoints_dir), str(TENSOR_ELEMENTS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.split(maxsplit=1))
        self.lines.put(["eof", ""])

    def send(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def next_line(self, timeout=LINE_TIMEOUT_S):
        kind, _, rest = " ".join(self.lines.get(timeout=timeout)).partition(" ")
        if kind in ("error", "eof"):
            raise AssertionError(f"saver process failed: {kind} {rest}")
        return kind, rest

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def make_model():
    return torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(TENSOR_ELEMENTS)) for _ in range(4)])


def hidden_folders(checkpoints_dir):
    return {entry.name for entry in os.scandir(checkpoints_dir) if entry.name.startswith(".") and entry.is_dir()}


def loaded_index(checkpointer, model, checkpoint):
    """Load ``checkpoint`` and return the one value that all its tensors contain."""
    checkpointer.load_checkpoint(checkpoint)
    values = torch.cat([parameter.detach() for parameter in model]).unique().tolist()
    assert len(values) == 1, f"{checkpoint.path} mixes the values {values[:5]} of several saves"
    return values[0]


def run_round(saver, rng, first_index, wait_for_save):
    """Start a saving child, kill it at a random moment and return its lines."""
    saver.send(f"run {first_index}")
    lines = []  # the child's lines; its "pid" line may come after its first "start"
    if wait_for_save:
        while not lines or lines[-1][0] != "done":
            kind, rest = saver.next_line()
            if kind != "pid":
                lines.append((kind, rest))
    time.sleep(rng.uniform(0.0, 0.3))
    saver.send("kill")
    while True:
        kind, rest = saver.next_line()
        if kind == "killed":
            return lines
        if kind != "pid":
            lines.append((kind, rest))


def test_sigkill_during_saves_leaves_loadable_checkpoints(tmp_path):
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    context = f"(random seed {seed})"
    checkpoints_dir = tmp_path / "ckpts"
    checkpoints_dir.mkdir()
    model = make_model()
    checkpointer = Checkpointer(checkpoints_dir, {"model": model})

    started, done = set(), set()
    next_index = 0
    kills_mid_save = 0
    leftovers_seen = 0
    pending_leftovers = set()
    saver = SaverProcess(checkpoints_dir)
    try:
        for round_number in range(30):
            # Every third child is killed without waiting for a finished
            # save, so kills also land in start-up and in the first save,
            # which removes the previous child's leftovers.
            lines = run_round(saver, rng, next_index, wait_for_save=round_number % 3 != 0)
            round_started = {int(rest) for kind, rest in lines if kind == "start"}
            round_done = {int(rest) for kind, rest in lines if kind == "done"}
            started |= round_started
            done |= round_done
            if lines and lines[-1][0] == "start":
                kills_mid_save += 1
            if started:
                next_index = max(started) + 1

            listed = checkpointer.list_checkpoints()
            for checkpoint in listed:
                assert not checkpoint.path.name.startswith("."), context
                index = loaded_index(checkpointer, model, checkpoint)
                assert index == checkpoint.meta["index"], context
                assert index in started, f"{checkpoint.path} holds {index}, never saved {context}"
            if done:
                assert listed, f"no checkpoint listed after save {max(done)} completed {context}"
                newest = max(listed, key=ckpt_recency)
                assert newest.meta["index"] >= max(done), context

            leftovers = hidden_folders(checkpoints_dir)
            if round_done:
                assert not pending_leftovers & leftovers, f"leftovers not removed by the next save {context}"
            pending_leftovers = leftovers
            leftovers_seen += bool(leftovers)
    finally:
        saver.close()

    assert len(done) >= 20, context
    assert kills_mid_save >= 10, context
    assert leftovers_seen >= 1, context
