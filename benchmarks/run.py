"""Run the benchmark suite and print the table of ratios.

Usage::

    python -m benchmarks                 # full sizes, a few minutes
    python -m benchmarks --quick         # small sizes, for a first look
    python -m benchmarks --only save-load listing --markdown
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from benchmarks import bench_average, bench_io, bench_listing, bench_training
from benchmarks.common import FULL, QUICK, Row, Sizes, describe_machine, remove_tree

SECTIONS: dict[str, Callable[[Sizes, pathlib.Path, Any], list[Row]]] = {
    "save-load": bench_io.run,
    "listing": bench_listing.run,
    "averaging": bench_average.run,
    "training": bench_training.run,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: a 64 MiB model and 2,000 checkpoints to list")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), metavar="SECTION",
                        help=f"run only these sections ({', '.join(SECTIONS)})")
    parser.add_argument("--repeat", type=int, help="runs per case; the best one counts (default 3)")
    parser.add_argument("--dir", type=pathlib.Path, default=pathlib.Path.cwd(),
                        help="folder in which a scratch folder is created; it must be on the "
                             "disk to measure, not a RAM disk (default: the current folder)")
    parser.add_argument("--threads", type=int,
                        help="torch intra-op threads (torch.set_num_threads); on a machine shared "
                             "with other jobs, 1 avoids threads waiting on busy cores")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--json", type=pathlib.Path, help="also write the rows and machine to this file")
    return parser.parse_args(argv)


def format_table(rows: list[Row], markdown: bool) -> str:
    header = ["section", "case", "measured", "baseline (same run)", "ratio", "target", "met"]
    lines = []
    for row in rows:
        met = {True: "yes", False: "NO", None: ""}[row.met]
        ratio = f"{row.ratio:.2f}" + (f" ({row.note})" if row.note else "")
        lines.append([row.section, row.case, row.measured, row.baseline, ratio, row.target_text(), met])
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(str(item)) for item in column) for column in zip(header, *lines)]
    out = ["  ".join(item.ljust(width) for item, width in zip(header, widths))]
    out.append("  ".join("-" * width for width in widths))
    out += ["  ".join(item.ljust(width) for item, width in zip(line, widths)) for line in lines]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.repeat is not None:
        if args.repeat < 1:
            print(f"--repeat must be at least 1, got {args.repeat}", file=sys.stderr)
            return 2
        sizes = Sizes(**{**sizes.__dict__, "repeat": args.repeat})
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="recoverkit-bench-", dir=args.dir))
    machine = describe_machine(scratch)
    machine["torch threads"] = str(torch.get_num_threads())
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    rows: list[Row] = []
    try:
        for name, section in SECTIONS.items():
            if args.only and name not in args.only:
                continue
            rows += section(sizes, scratch, log)
    finally:
        remove_tree(scratch)
    elapsed = time.perf_counter() - started

    print(f"recoverkit benchmarks ({'quick' if args.quick else 'full'} sizes, best of {sizes.repeat}, "
          f"{elapsed:.0f} s in all)")
    for key, value in machine.items():
        print(f"  {key}: {value}")
    print()
    print(format_table(rows, args.markdown))
    if args.json is not None:
        args.json.write_text(json.dumps({
            "machine": machine,
            "sizes": sizes.__dict__,
            "seconds": elapsed,
            "rows": [{**row.__dict__, "met": row.met} for row in rows],
        }, indent=2))
    missed = [row for row in rows if row.met is False]
    return 1 if missed else 0
