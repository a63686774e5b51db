"""A latency-over-time plot of a nemesis run, fault windows shaded (needs matplotlib).

matplotlib is optional (``pip install 'replobj[plot]'``): without it no plot is drawn and
:func:`write_latency_plot` says so by returning ``False``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from ..history import Operation
from .report import FaultEvent

__all__ = ["can_plot", "write_latency_plot"]

_COLOURS = {"put": "tab:blue", "get": "tab:green"}


def can_plot() -> bool:
    """Whether matplotlib is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def write_latency_plot(
    path: Path,
    history: Sequence[Operation],
    faults: Sequence[FaultEvent],
    load_started_ns: int,
    title: str,
) -> bool:
    """Draw each completed call's latency against when it was sent, shade each fault's
    window and label it with its kind; write a PNG to ``path``.

    :param history: the recorded operations (``time.monotonic_ns`` ticks).
    :param faults: the injected faults (seconds after the load started).
    :param load_started_ns: ``time.monotonic_ns()`` when the load started.
    :param title: the plot's title (seed, backend, size).
    :returns: ``False`` (and writes nothing) if matplotlib is not installed.
    """
    if not can_plot():
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(12, 4.5))
    for name, colour in _COLOURS.items():
        done = [op for op in history if op.name == name and op.return_time is not None]
        sent = [(op.call_time - load_started_ns) / 1e9 for op in done]
        latency = [(op.return_time - op.call_time) / 1e6 for op in done if op.return_time]
        axes.scatter(sent, latency, s=3, alpha=0.5, color=colour, label=f"{name} ({len(done)})")
    for number, fault in enumerate(faults):
        axes.axvspan(fault.start, fault.end, color="tab:red", alpha=0.12)
        axes.annotate(
            fault.kind,
            (fault.start, 1.0 - 0.06 * (number % 3)),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            va="top",
        )
    axes.set_yscale("log")
    axes.set_xlabel("seconds after the load started (call sent)")
    axes.set_ylabel("latency (ms)")
    axes.set_title(title + " — shaded: fault windows")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
