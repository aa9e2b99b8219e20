"""Fault-injection harness: damage saves and checkpoints, then check what recovery returns.

Each fault runs a training-like save loop in a forked child process and
injects one of these faults:

* ``sigkill``: the child is killed with SIGKILL at a random instant while it
  saves and prunes checkpoints back to back;
* ``enospc``: a patched writer writes part of a parameter file or of the meta
  file, then raises ``OSError(ENOSPC)`` as a full disk does;
* ``truncate``, ``bitflip``, ``missing-file``: after the saves, one
  parameter file of a random checkpoint is cut short (possibly to zero
  bytes), has one bit flipped, or is deleted;
* ``meta-garbage``: the meta file of a random checkpoint is replaced with
  random bytes.

After each fault the harness recovers with a fresh :class:`Checkpointer` and
checks that it returns the newest checkpoint fully saved before the fault
(and not damaged by it), with every value identical to what was saved. A
recovery of an older checkpoint, a wrong value or an error counts as data
lost.

Run ``python -m tests.faults.harness --long`` from the repository root for
1,000 faults and a table, or ``--faults N --kinds ...`` for other runs.
"""

from __future__ import annotations

import os

# One intra-op thread keeps the forked children safe: fork copies only the
# calling thread, so a pool of OpenMP threads would be missing in the child.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import errno  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import pathlib  # noqa: E402
import random  # noqa: E402
import select  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

import recoverkit.checkpointer as checkpointer_module  # noqa: E402
import recoverkit.hooks.torch_hooks as torch_hooks_module  # noqa: E402
from recoverkit import Checkpointer, EpochCounter  # noqa: E402
from recoverkit.storage.layout import METAFNAME, TMP_PREFIX  # noqa: E402

KINDS = ("sigkill", "enospc", "truncate", "bitflip", "missing-file", "meta-garbage")
DAMAGE_KINDS = ("truncate", "bitflip", "missing-file", "meta-garbage")
LONG_FAULTS = 1200
# This many damage faults in a row copy the same saved checkpoints.
DAMAGE_FAULTS_PER_SAVE = 8
# A child that sends nothing for this long is stuck, and its fault counts as data lost.
CHILD_TIMEOUT_SECONDS = 120.0

logger = logging.getLogger(__name__)

# Keyword arguments of the Checkpointer that recovers; ``--no-verify`` sets
# verify_files=False to show which faults only verification catches.
RECOVERY_OPTIONS: dict[str, Any] = {}


# The training state saved at each step


def build_state(step: int) -> dict[str, Any]:
    """Build the recoverables as they are after ``step`` steps, deterministically.

    Step 0 is the untouched start state. The values depend only on ``step``,
    so the harness can rebuild what any checkpoint must contain.
    """
    generator = torch.Generator().manual_seed(1000 + step)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    counter = EpochCounter(limit=10**6)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    for _ in range(step):
        for parameter in model.parameters():
            parameter.grad = torch.randn(parameter.shape, generator=generator)
        optimizer.step()
        scheduler.step()
    counter.current = step
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler, "counter": counter}


def state_values(recoverables: dict[str, Any]) -> dict[str, Any]:
    """Return the values of the recoverables that a checkpoint must restore."""
    return {
        "model": recoverables["model"].state_dict(),
        "optimizer": recoverables["optimizer"].state_dict(),
        "scheduler": recoverables["scheduler"].state_dict(),
        "counter": recoverables["counter"].current,
    }


def values_equal(left: Any, right: Any) -> bool:
    """Compare nested state dicts exactly, tensors with ``torch.equal``."""
    if isinstance(left, torch.Tensor) or isinstance(right, torch.Tensor):
        return (
            isinstance(left, torch.Tensor)
            and isinstance(right, torch.Tensor)
            and left.dtype == right.dtype
            and torch.equal(left, right)
        )
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(values_equal(left[k], right[k]) for k in left)
    if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        return len(left) == len(right) and all(values_equal(a, b) for a, b in zip(left, right))
    return left == right


# Child processes


def _report(write_fd: int, line: str) -> None:
    os.write(write_fd, f"{line}\n".encode())


def _child_main(ckpt_dir: pathlib.Path, steps: range, num_to_keep: int, write_fd: int, enospc_step: int | None, enospc_target: str, harness_pid: int) -> None:
    """Save ``steps`` one after another, reporting each step after its save returns."""
    for step in steps:
        if os.getppid() != harness_pid:
            return  # the harness died, so no process will kill this loop
        checkpointer = Checkpointer(ckpt_dir, build_state(step))
        if step == enospc_step:
            _patch_writer_to_fail(enospc_target)
        try:
            checkpointer.save_and_keep_only(meta={"step": step}, num_to_keep=num_to_keep)
        except OSError as error:
            if error.errno == errno.ENOSPC and step == enospc_step:
                _report(write_fd, f"failed {step}")
                return
            raise
        if step == enospc_step:
            _report(write_fd, f"not-injected {step}")
            return
        _report(write_fd, f"saved {step}")


def _patch_writer_to_fail(target: str) -> None:
    """Make the next parameter-file or meta-file write stop halfway with ENOSPC."""

    def write_part_then_fail(data: bytes, path: Any) -> None:
        with open(path, "wb") as handle:
            handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    if target == "parameter file":

        def failing_save(obj: Any, path: Any) -> None:
            import io

            buffer = io.BytesIO()
            torch.save(obj, buffer)
            write_part_then_fail(buffer.getvalue(), path)

        torch_hooks_module.save_torch_file = failing_save
    else:

        def failing_meta_write(path: pathlib.Path, data: bytes) -> None:
            write_part_then_fail(data, path)

        checkpointer_module.write_file_durably = failing_meta_write


def _fork_child(ckpt_dir: pathlib.Path, steps: range, num_to_keep: int, enospc_step: int | None = None, enospc_target: str = "") -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    harness_pid = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: save, then leave without running the parent's cleanup
        os.close(read_fd)
        code = 0
        try:
            logging.disable(logging.CRITICAL)
            _child_main(ckpt_dir, steps, num_to_keep, write_fd, enospc_step, enospc_target, harness_pid)
        except BaseException as error:  # reported to the parent, which counts it
            _report(write_fd, f"error {type(error).__name__}: {error}".replace("\n", " "))
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _collect(pid: int, read_fd: int, kill_after: float | None = None) -> list[str]:
    """Read the child's reports until it exits, killing it after ``kill_after`` seconds."""
    data = b""
    start = time.monotonic()
    killed = False
    while True:
        now = time.monotonic() - start
        if kill_after is not None and not killed and now >= kill_after:
            os.kill(pid, signal.SIGKILL)
            killed = True
        if now > CHILD_TIMEOUT_SECONDS:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_fd)
            raise TimeoutError(f"fault child {pid} timed out after {CHILD_TIMEOUT_SECONDS:.0f} s")
        wait = 0.5 if kill_after is None or killed else max(0.0, kill_after - now)
        ready, _, _ = select.select([read_fd], [], [], wait)
        if ready:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            data += chunk
    os.close(read_fd)
    os.waitpid(pid, 0)
    return data.decode().splitlines()


# Checking recovery


@dataclasses.dataclass
class Outcome:
    """The result of one injected fault."""

    kind: str
    expected_step: int | None
    recovered_step: int | None
    correct: bool
    detail: str = ""


def recover_and_check(ckpt_dir: pathlib.Path, kind: str, accepted_steps: set[int | None], description: str) -> Outcome:
    """Recover from ``ckpt_dir`` and compare with the state of the accepted steps."""
    expected = max((s for s in accepted_steps if s is not None), default=None)
    recoverables = build_state(0)
    checkpointer = Checkpointer(ckpt_dir, recoverables, **RECOVERY_OPTIONS)
    try:
        checkpoint = checkpointer.recover_if_possible()
    except Exception as error:  # counted as data lost, with the reason
        return Outcome(kind, expected, None, False, f"{description}: recovery raised {type(error).__name__}: {error}")

    recovered = None if checkpoint is None else checkpoint.meta.get("step")
    if recovered not in accepted_steps:
        return Outcome(kind, expected, recovered, False, f"{description}: recovered step {recovered}, expected {sorted(accepted_steps, key=str)}")
    listed = [c.path.name for c in checkpointer.list_checkpoints()]
    if any(not name.startswith("CKPT+") for name in listed):
        return Outcome(kind, expected, recovered, False, f"{description}: listing shows {listed}")
    reference = state_values(build_state(recovered if recovered is not None else 0))
    if not values_equal(state_values(recoverables), reference):
        return Outcome(kind, expected, recovered, False, f"{description}: values of step {recovered} differ from the saved ones")
    return Outcome(kind, expected, recovered, True, description)


def _saved_steps(lines: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in lines if line.startswith("saved ")]


def _child_errors(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(("error", "not-injected"))]


# The faults


def inject_sigkill(ckpt_dir: pathlib.Path, rng: random.Random, save_seconds: float) -> Outcome:
    """Kill a child that saves back to back at a random instant."""
    kill_after = rng.uniform(0.0, 5 * save_seconds)
    pid, read_fd = _fork_child(ckpt_dir, range(1, 10**6), num_to_keep=2)
    lines = _collect(pid, read_fd, kill_after=kill_after)
    errors = _child_errors(lines)
    saved = _saved_steps(lines)
    last = saved[-1] if saved else None
    description = f"SIGKILL after {kill_after * 1000:.0f} ms, {len(saved)} saves reported"
    if errors:
        return Outcome("sigkill", last, None, False, f"{description}: child failed: {errors}")
    # The save in progress may have been published just before the kill, and
    # a published checkpoint is complete, so it is an accepted result too.
    in_progress = 1 if last is None else last + 1
    return recover_and_check(ckpt_dir, "sigkill", {last, in_progress}, description)


def inject_enospc(ckpt_dir: pathlib.Path, rng: random.Random) -> Outcome:
    """Fail one save with ENOSPC from a patched writer."""
    failing_step = rng.randint(1, 4)
    target = rng.choice(["parameter file", "meta file"])
    pid, read_fd = _fork_child(ckpt_dir, range(1, failing_step + 1), num_to_keep=2, enospc_step=failing_step, enospc_target=target)
    lines = _collect(pid, read_fd)
    description = f"ENOSPC writing the {target} of save {failing_step}"
    if f"failed {failing_step}" not in lines:
        return Outcome("enospc", failing_step - 1, None, False, f"{description}: fault not injected: {lines}")
    leftovers = [p.name for p in ckpt_dir.iterdir() if p.name.startswith(TMP_PREFIX)]
    if leftovers:
        return Outcome("enospc", failing_step - 1, None, False, f"{description}: half-written folders left: {leftovers}")
    expected = failing_step - 1 if failing_step > 1 else None
    return recover_and_check(ckpt_dir, "enospc", {expected}, description)


def save_template(template_dir: pathlib.Path, rng: random.Random) -> str | None:
    """Save two to four checkpoints in a child; return an error text, or None on success."""
    shutil.rmtree(template_dir, ignore_errors=True)
    count = rng.randint(2, 4)
    pid, read_fd = _fork_child(template_dir, range(1, count + 1), num_to_keep=count)
    lines = _collect(pid, read_fd)
    if _saved_steps(lines) != list(range(1, count + 1)):
        return f"saves before the fault failed: {lines}"
    return None


def inject_damage(ckpt_dir: pathlib.Path, rng: random.Random, kind: str, template_dir: pathlib.Path) -> Outcome:
    """Copy checkpoints saved by a child, then damage one of the copies after the fact."""
    shutil.copytree(template_dir, ckpt_dir)
    folders = sorted(p for p in ckpt_dir.iterdir() if p.name.startswith("CKPT+"))
    steps_by_folder = {folder: _step_of(folder) for folder in folders}
    # Half the time the newest checkpoint is hit, so recovery has to fall back.
    target = max(folders, key=steps_by_folder.get) if rng.random() < 0.5 else rng.choice(folders)
    description = damage_folder(target, rng, kind)
    damaged_step = steps_by_folder[target]
    intact = [step for step in steps_by_folder.values() if step != damaged_step]
    return recover_and_check(ckpt_dir, kind, {max(intact)}, f"{description} of step {damaged_step}")


def damage_folder(folder: pathlib.Path, rng: random.Random, kind: str) -> str:
    """Apply one damage of ``kind`` to a file of ``folder``; return what was done."""
    if kind == "meta-garbage":
        garbage = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400)))
        # A leading byte that is invalid UTF-8 keeps the garbage from parsing as YAML by chance.
        (folder / METAFNAME).write_bytes(b"\xff" + garbage)
        return "meta file replaced with garbage"
    paramfiles = sorted(p for p in folder.iterdir() if p.name.endswith(".ckpt"))
    path = rng.choice(paramfiles)
    if kind == "missing-file":
        path.unlink()
        return f"{path.name} deleted"
    data = bytearray(path.read_bytes())
    if kind == "truncate":
        length = rng.randrange(0, len(data))
        path.write_bytes(bytes(data[:length]))
        return f"{path.name} truncated to {length} of {len(data)} bytes"
    bit = rng.randrange(len(data) * 8)
    data[bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(data))
    return f"bit {bit} of {path.name} flipped"


def _step_of(folder: pathlib.Path) -> int:
    import yaml

    return yaml.safe_load((folder / METAFNAME).read_text(encoding="utf-8"))["step"]


# Running and reporting


def measure_save_seconds(base_dir: pathlib.Path) -> float:
    """Time a few saves in a child, to spread SIGKILL instants over whole saves."""
    ckpt_dir = base_dir / "calibration"
    start = time.monotonic()
    pid, read_fd = _fork_child(ckpt_dir, range(1, 6), num_to_keep=2)
    lines = _collect(pid, read_fd)
    if _saved_steps(lines) != [1, 2, 3, 4, 5]:
        raise RuntimeError(f"Calibration saves failed: {lines}")
    shutil.rmtree(ckpt_dir)
    return (time.monotonic() - start) / 5


def run_faults(kinds: list[str], total: int, seed: int, base_dir: pathlib.Path) -> list[Outcome]:
    """Inject ``total`` faults, cycling through ``kinds``; return each outcome."""
    rng = random.Random(seed)
    # Building an optimizer imports torch._dynamo on first use, which takes seconds;
    # doing it before the first fork spares every child that import.
    build_state(1)
    save_seconds = measure_save_seconds(base_dir)
    template_dir = base_dir / "template"
    damage_faults = 0
    outcomes = []
    for index in range(total):
        kind = kinds[index % len(kinds)]
        ckpt_dir = base_dir / f"fault-{index:05d}"
        try:
            if kind == "sigkill":
                outcome = inject_sigkill(ckpt_dir, rng, save_seconds)
            elif kind == "enospc":
                outcome = inject_enospc(ckpt_dir, rng)
            else:
                # Damage faults share freshly saved checkpoints in groups, which keeps
                # the default run short; each fault still damages its own copy.
                if damage_faults % DAMAGE_FAULTS_PER_SAVE == 0:
                    error_text = save_template(template_dir, rng)
                    if error_text is not None:
                        outcomes.append(Outcome(kind, None, None, False, error_text))
                        continue
                damage_faults += 1
                outcome = inject_damage(ckpt_dir, rng, kind, template_dir)
        except TimeoutError as error:
            outcome = Outcome(kind, None, None, False, str(error))
        outcomes.append(outcome)
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return outcomes


def summarize(outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    """Count faults, correct recoveries and data lost per kind."""
    table: dict[str, dict[str, int]] = {}
    for outcome in outcomes:
        row = table.setdefault(outcome.kind, {"faults": 0, "correct": 0, "lost": 0})
        row["faults"] += 1
        row["correct" if outcome.correct else "lost"] += 1
    return table


def format_table(table: dict[str, dict[str, int]], seconds: float) -> str:
    """Return the summary as a Markdown table."""
    lines = ["| fault | injected | recoveries correct | data lost |", "|---|---:|---:|---:|"]
    totals = {"faults": 0, "correct": 0, "lost": 0}
    for kind in KINDS:
        if kind not in table:
            continue
        row = table[kind]
        lines.append(f"| {kind} | {row['faults']} | {row['correct']} | {row['lost']} |")
        for key in totals:
            totals[key] += row[key]
    lines.append(f"| **total** | **{totals['faults']}** | **{totals['correct']}** | **{totals['lost']}** |")
    lines.append("")
    lines.append(f"{totals['faults']} faults in {seconds:.0f} s.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the harness from the command line; exit 1 if any fault lost data."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help=f"inject {LONG_FAULTS} faults and print the table")
    parser.add_argument("--faults", type=int, default=60, help="number of faults to inject (default 60)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="fault kinds to cycle through")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random fault choices")
    parser.add_argument("--dir", type=pathlib.Path, help="folder for the checkpoints (default: a temporary folder)")
    parser.add_argument("--no-verify", action="store_true", help="recover with verify_files=False")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON instead of a table")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    if args.no_verify:
        RECOVERY_OPTIONS["verify_files"] = False
    logging.disable(logging.WARNING)  # the fallback warnings are expected by design
    total = LONG_FAULTS if args.long else args.faults
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="recoverkit-faults-", dir=args.dir) as base:
        outcomes = run_faults(args.kinds, total, args.seed, pathlib.Path(base))
    seconds = time.monotonic() - start
    table = summarize(outcomes)
    failures = [f"{o.kind}: {o.detail}" for o in outcomes if not o.correct]
    if args.json:
        print(json.dumps({"table": table, "failures": failures, "seconds": seconds}))
    else:
        print(format_table(table, seconds))
        for failure in failures:
            print(f"LOST {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
