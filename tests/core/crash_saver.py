"""A process that forks savers on request, for the SIGKILL crash test.

Run as ``python crash_saver.py CHECKPOINTS_DIR TENSOR_ELEMENTS``. It imports
torch once, then serves commands read from stdin, one per line:

``run FIRST_INDEX``
    Fork a child that saves checkpoints in a loop. Before save ``i`` the
    child fills every tensor of its model with ``i`` and writes ``start i``;
    after ``save_and_keep_only`` returns it writes ``done i``. This process
    writes ``pid PID``.
``kill``
    Kill the child with SIGKILL, reap it and write ``killed``.

Forking skips the torch import for each child, which makes 30 kills cheap.
All lines go to one stdout pipe; each is written with a single ``os.write``
shorter than PIPE_BUF, so lines of the two processes never interleave.
"""

import os
import signal
import sys


def write_line(text):
    os.write(1, (text + "\n").encode("ascii"))


def save_forever(checkpoints_dir, elements, first_index):
    import torch

    from recoverkit import Checkpointer

    model = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(elements)) for _ in range(4)])
    checkpointer = Checkpointer(checkpoints_dir, {"model": model})
    index = first_index
    while True:
        with torch.no_grad():
            for parameter in model:
                parameter.fill_(float(index))
        write_line(f"start {index}")
        checkpointer.save_and_keep_only(meta={"index": index}, num_to_keep=2)
        write_line(f"done {index}")
        index += 1


def run_child(checkpoints_dir, elements, first_index):
    try:
        save_forever(checkpoints_dir, elements, first_index)
    except BaseException as error:  # reported to the test, which fails on it
        write_line(f"error {type(error).__name__}: {error}"[:500].replace("\n", " "))
    finally:
        os._exit(1)


def serve(checkpoints_dir, elements):
    import torch

    import recoverkit  # noqa: F401  (imported once, before forking)

    torch.set_num_threads(1)  # no thread pool exists when the children fork
    child = None
    for line in sys.stdin:
        command = line.split()
        if command[0] == "run":
            child = os.fork()
            if child == 0:
                run_child(checkpoints_dir, elements, int(command[1]))
            write_line(f"pid {child}")
        elif command[0] == "kill":
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            child = None
            write_line("killed")
    if child is not None:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
