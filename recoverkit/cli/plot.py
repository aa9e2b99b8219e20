"""``recoverkit plot``: meta values of the checkpoints over epochs, steps or time."""

from __future__ import annotations

import datetime
import logging
import math
import pathlib
import re
from collections.abc import Sequence
from typing import Any

import click

from recoverkit.cli._folders import EXISTING_DIR, list_checkpoints, user_meta
from recoverkit.cli._output import CheckFailed, make_console, print_json, usage_error, write_output_file
from recoverkit.cli._retention import KEEP, LEAVE, Decision, build_policy, plan_retention, retention_options
from recoverkit.storage.layout import Checkpoint
from recoverkit.storage.meta import UNIXTIME_KEY

__all__ = ["plot"]

logger = logging.getLogger(__name__)

_X_CHOICES = ("auto", "epoch", "step", "time")
_IMAGE_FORMATS = ("png", "svg", "pdf")
_INSTALL_HINT = "pip install 'recoverkit[plot]'"


@click.command(
    "plot",
    epilog="""\b
Examples:
  recoverkit plot results/checkpoints --key valid_loss --out curve.png
  recoverkit plot results/checkpoints --key valid_loss --key accuracy --min-key valid_loss --out curve.png
  recoverkit plot results/checkpoints --key loss --x step --keep 3 --out loss.svg

\b
Each checkpoint is one point. The checkpoints that the retention options
keep (the same options as 'recoverkit prune'; by default the newest one, as
save_and_keep_only does) are drawn as large filled markers labelled with the
rule that keeps them. --x epoch and --x step read the meta values 'epoch'
and 'step'; auto picks epoch, then step, then time. The image is replaced if
it exists. Needs matplotlib: pip install 'recoverkit[plot]'.

\b
Exit codes:
  0  the image was written
  1  matplotlib is missing, or DIR has no checkpoints to plot
  2  usage error, DIR does not exist, or no checkpoint has a --key or --x value
""",
)
@click.argument("checkpoints_dir", metavar="DIR", type=EXISTING_DIR)
@click.option("--key", "keys", multiple=True, required=True, metavar="KEY", help="A numeric meta key to plot; repeat for one panel per key.")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    help="The image to write: .png, .svg or .pdf.",
)
@click.option("--x", "x_axis", type=click.Choice(_X_CHOICES), default="auto", show_default=True, help="The horizontal axis.")
@retention_options(keep_default=1)
@click.option("--json", "as_json", is_flag=True, help="Print the plotted points as JSON for scripts.")
def plot(
    checkpoints_dir: pathlib.Path,
    keys: Sequence[str],
    out_path: pathlib.Path,
    x_axis: str,
    num_to_keep: int,
    min_keys: Sequence[str],
    max_keys: Sequence[str],
    keep_recent: bool,
    keep_every_n_epochs: int | None,
    as_json: bool,
) -> None:
    """Plot meta values of the checkpoints in DIR as an image, marking those retention keeps."""
    image_format = out_path.suffix.lower().lstrip(".")
    if image_format not in _IMAGE_FORMATS:
        usage_error(f"--out {out_path} must end in .png, .svg or .pdf.")
    figure_class = _import_figure()
    policy = build_policy(num_to_keep, min_keys, max_keys, keep_recent, keep_every_n_epochs)

    checkpoints = list_checkpoints(checkpoints_dir)
    if not checkpoints:
        raise CheckFailed(f"No checkpoints in {checkpoints_dir}: nothing to plot.")
    x_axis = _resolve_x_axis(checkpoints, x_axis)
    _check_keys(checkpoints, keys, x_axis)
    decisions = sorted(plan_retention(checkpoints, policy), key=lambda decision: _x_sort_key(decision, x_axis))

    figure = _draw(figure_class, decisions, keys, x_axis, _rules_text(policy, min_keys, max_keys, keep_every_n_epochs))
    write_output_file(out_path, lambda path: figure.savefig(path, format=image_format, dpi=100), overwrite=True)

    if as_json:
        print_json({"out": str(out_path), "x": x_axis, "keys": list(keys), "points": [_point_json(d, keys, x_axis) for d in decisions]})
        return
    kept = sum(decision.action == KEEP for decision in decisions)
    make_console().print(f"Wrote {out_path}: {len(decisions)} checkpoints over {x_axis}, {kept} kept by retention.")


def _import_figure() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise CheckFailed(
            f"recoverkit plot needs matplotlib, which is not installed ({error}). "
            f"Install it with: {_INSTALL_HINT}"
        ) from error
    return Figure


def _resolve_x_axis(checkpoints: list[Checkpoint], x_axis: str) -> str:
    if x_axis != "auto":
        return x_axis
    for candidate in ("epoch", "step"):
        if any(_is_number(checkpoint.meta.get(candidate)) for checkpoint in checkpoints):
            return candidate
    return "time"


def _check_keys(checkpoints: list[Checkpoint], keys: Sequence[str], x_axis: str) -> None:
    numeric = sorted({key for checkpoint in checkpoints for key, value in user_meta(checkpoint).items() if _is_number(value)})
    for key in [*keys, x_axis] if x_axis != "time" else keys:
        if not any(_is_number(checkpoint.meta.get(key)) for checkpoint in checkpoints):
            option = "--key" if key in keys else "--x"
            usage_error(
                f"No checkpoint has a numeric meta value {key!r} ({option}). Numeric meta keys: "
                f"{', '.join(numeric) if numeric else 'none'}."
            )


def _x_value(checkpoint: Checkpoint, x_axis: str) -> Any:
    if x_axis == "time":
        unixtime = checkpoint.meta.get(UNIXTIME_KEY)
        return datetime.datetime.fromtimestamp(unixtime) if _is_number(unixtime) else None
    value = checkpoint.meta.get(x_axis)
    return value if _is_number(value) else None


def _x_sort_key(decision: Decision, x_axis: str) -> tuple[bool, Any]:
    value = _x_value(decision.checkpoint, x_axis)
    return (value is None, value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _draw(figure_class: Any, decisions: list[Decision], keys: Sequence[str], x_axis: str, rules: str) -> Any:
    figure = figure_class(figsize=(7.0, 1.0 + 2.4 * len(keys)), layout="constrained")
    axes_list = figure.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
    for axes, key in zip(axes_list, keys):
        points = [
            (_x_value(decision.checkpoint, x_axis), decision.checkpoint.meta[key], decision)
            for decision in decisions
            if _x_value(decision.checkpoint, x_axis) is not None and _is_number(decision.checkpoint.meta.get(key))
        ]
        _draw_panel(axes, key, points)
    axes_list[-1].set_xlabel(x_axis)
    axes_list[0].legend(loc="best", fontsize="small", frameon=False)
    figure.suptitle(f"Retention: {rules}", fontsize="medium")
    return figure


# One marker per retention rule, drawn on top of each other when several rules
# keep the same checkpoint, so that no label text overlaps on dense charts.
_RULE_STYLES = (
    {"marker": "o", "s": 150, "facecolors": "none", "edgecolors": "tab:green", "linewidths": 2.0},
    {"marker": "*", "s": 110, "color": "tab:orange"},
    {"marker": "s", "s": 90, "facecolors": "none", "edgecolors": "tab:purple", "linewidths": 1.8},
    {"marker": "D", "s": 60, "facecolors": "none", "edgecolors": "tab:brown", "linewidths": 1.5},
)
_LEAVE_STYLE = {"marker": "X", "s": 70, "color": "tab:red"}


def _draw_panel(axes: Any, key: str, points: list[tuple[Any, Any, Decision]]) -> None:
    xs = [x for x, _, _ in points]
    ys = [y for _, y, _ in points]
    axes.plot(xs, ys, color="tab:blue", linewidth=1.2, marker="o", markersize=3.5, label="checkpoint")

    rules = sorted({_rule_label(reason) for _, _, decision in points if decision.action == KEEP for reason in decision.reasons})
    for index, rule in enumerate(rules):
        chosen = [(x, y) for x, y, decision in points if decision.action == KEEP and rule in map(_rule_label, decision.reasons)]
        style = _RULE_STYLES[index % len(_RULE_STYLES)]
        axes.scatter([x for x, _ in chosen], [y for _, y in chosen], label=f"kept: {rule}", zorder=3 + index, **style)

    left = [(x, y) for x, y, decision in points if decision.action == LEAVE]
    if left:
        axes.scatter(
            [x for x, _ in left], [y for _, y in left], label="left on disk: broken or not written by recoverkit", zorder=10, **_LEAVE_STYLE
        )
    axes.margins(x=0.05, y=0.12)
    axes.set_ylabel(key)
    axes.grid(True, alpha=0.3)


def _rule_label(reason: str) -> str:
    """Return a retention reason in chart words, such as ``3 newest`` or ``every 5 epochs``."""
    match = re.fullmatch(r"top (\d+) by (.+)", reason)
    if match is not None:
        count, key = match.groups()
        return f"{count} newest" if key == "ckpt_recency" else f"{count} {key}"
    return reason.split(" (")[0]


def _rules_text(policy: Any, min_keys: Sequence[str], max_keys: Sequence[str], keep_every_n_epochs: int | None) -> str:
    parts = []
    if policy.keep_recent:
        parts.append(f"{policy.num_to_keep} newest")
    parts += [f"{policy.num_to_keep} lowest {key}" for key in min_keys]
    parts += [f"{policy.num_to_keep} highest {key}" for key in max_keys]
    if keep_every_n_epochs is not None:
        parts.append(f"every {keep_every_n_epochs} epochs")
    return "keep " + ", ".join(parts) if parts else "keep nothing"


def _point_json(decision: Decision, keys: Sequence[str], x_axis: str) -> dict[str, Any]:
    x = _x_value(decision.checkpoint, x_axis)
    return {
        "name": decision.checkpoint.path.name,
        "x": x.isoformat() if isinstance(x, datetime.datetime) else x,
        "values": {key: decision.checkpoint.meta.get(key) for key in keys},
        "action": decision.action,
        "reasons": list(decision.reasons),
    }

