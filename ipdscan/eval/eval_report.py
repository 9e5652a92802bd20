"""An evaluation's result: per-generator rows (with bootstrap intervals where asked), and the table, file and plot
made from them."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..text import csv_text
from .labelled import Unreadable
from .metrics import LEVEL, RANKING_METRICS, Row, bootstrap, mean_interval, mean_row, metrics, percentile_interval
from .perturbations import STRENGTH_LABELS, parse_perturbations


@dataclass
class EvalReport:
    rows: list[Row]  # one per (perturbation, generator), perturbations in run order
    detector: dict  # name, variant, sha256 of the weights
    unreadable: list[Unreadable] = field(default_factory=list)  # from the unperturbed run
    # Per row, the (labels, scores) it was computed from, so that accuracy can be re-read at another threshold.
    samples: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)
    # With bootstrap intervals (with_intervals): {"resamples": N, "seed": S, "level": 0.95}, and the mean rows'
    # intervals by (perturbation, group; "" for the overall mean), which table() puts on the mean rows it makes.
    intervals: dict | None = None
    mean_intervals: dict[tuple[str, str], dict] = field(default_factory=dict, repr=False)

    def at_threshold(self, threshold: float) -> EvalReport:
        """The same scores with accuracies at ``threshold`` instead (AP, AUC and their intervals do not depend on
        it); no rescoring."""
        self._require_samples()
        rows = [replace(row, **metrics(truth, scores, threshold)) for row, (truth, scores) in zip(self.rows, self.samples)]
        return replace(self, rows=rows)

    def with_intervals(self, resamples: int, seed: int = 0) -> EvalReport:
        """The same report with bootstrap ``LEVEL`` intervals for AP and AUC on every row and every mean row.

        A generator row resamples its own images, stratified by class (``metrics.bootstrap``), from the stream
        ``(seed, its index among its perturbation's rows)``; a mean row's resample i is the mean of its generators'
        resample i (every generator resampled jointly), so the same ``seed`` gives the same intervals.
        """
        self._require_samples()
        rows, means = list(self.rows), {}
        for perturbation in dict.fromkeys(row.perturbation for row in self.rows):
            mine = [i for i, row in enumerate(self.rows) if row.perturbation == perturbation]
            resampled = {}
            for position, i in enumerate(mine):
                resampled[i] = bootstrap(*self.samples[i], resamples, (seed, position))
                rows[i] = replace(rows[i], **interval_fields(
                    {metric: None if resampled[i] is None else percentile_interval(resampled[i][metric])
                     for metric in RANKING_METRICS}))
            groups = {"": mine} | {name: [i for i in mine if self.rows[i].group == name]
                                   for name in dict.fromkeys(self.rows[i].group for i in mine)}
            for name, members in groups.items():
                means[perturbation, name] = interval_fields(
                    {metric: mean_interval([None if resampled[i] is None else resampled[i][metric] for i in members])
                     for metric in RANKING_METRICS})
        return replace(self, rows=rows, intervals={"resamples": resamples, "seed": seed, "level": LEVEL},
                       mean_intervals=means)

    def table(self, group: bool = False) -> list[Row]:
        """Per perturbation: the generator rows, then (group=True) each group's mean, then the mean."""
        out = []
        for perturbation in dict.fromkeys(row.perturbation for row in self.rows):
            rows = [row for row in self.rows if row.perturbation == perturbation]
            out += rows
            if group:
                out += [self._mean(perturbation, name, [row for row in rows if row.group == name])
                        for name in dict.fromkeys(row.group for row in rows)]
            out.append(self._mean(perturbation, "", rows))
        return out

    def _mean(self, perturbation: str, group: str, rows: list[Row]) -> Row:
        return replace(mean_row(perturbation, group, rows), **self.mean_intervals.get((perturbation, group), {}))

    def _require_samples(self) -> None:
        if len(self.samples) != len(self.rows):
            raise ValueError("this report does not hold its scores (made by evaluate?)")


def interval_fields(intervals: dict[str, tuple[float, float] | None]) -> dict:
    """{"ap": (low, high) or None, ...} as Row's fields: ap_low, ap_high, ..."""
    return {f"{metric}_{end}": None if interval is None else interval[k]
            for metric, interval in intervals.items() for k, end in enumerate(("low", "high"))}


COLUMNS = ["perturbation", "generator", "group", "ap", "ap_low", "ap_high", "auc", "auc_low", "auc_high", "acc",
           "r_acc", "f_acc", "n_real", "n_fake", "n_unreadable"]


def row_values(row: Row) -> dict:
    """The row's values in COLUMNS' order, as the .csv and .json tables hold them."""
    values = asdict(row)
    return {key: values[key] for key in COLUMNS}


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def with_interval(row: Row, metric: str, intervals: bool) -> str:
    """``87.3``, or with intervals ``87.3 [84.1, 90.2]`` (just ``-`` where the metric is undefined)."""
    value, low = getattr(row, metric), getattr(row, f"{metric}_low")
    if not intervals or value is None or low is None:
        return percent(value)
    return f"{percent(value)} [{percent(low)}, {percent(getattr(row, f'{metric}_high'))}]"


def to_markdown(report: EvalReport, group: bool = False) -> str:
    """A Table III-style table, metrics in percent; '-' where a metric is undefined. With intervals
    (``EvalReport.with_intervals``), AP and AUC carry theirs in brackets and a line below says how they were made."""
    rows = report.table(group)
    perturbed = any(row.perturbation != "none" for row in rows)
    intervals = report.intervals is not None
    head = (["perturbation"] if perturbed else []) + ["generator"] + (["group"] if group else []) + \
           ["AP", "AUC", "acc", "real acc", "fake acc", "real", "fake", "unreadable"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if column < len(head) - 8 else "---:" for column in range(len(head))) + "|"]
    for row in rows:
        name = f"**{row.generator}**" if row.generator == "mean" else row.generator
        cells = ([row.perturbation] if perturbed else []) + [name] + ([row.group] if group else []) + \
                [with_interval(row, "ap", intervals), with_interval(row, "auc", intervals), percent(row.acc),
                 percent(row.r_acc), percent(row.f_acc), str(row.n_real), str(row.n_fake), str(row.n_unreadable)]
        lines.append("| " + " | ".join(cells) + " |")
    if intervals:
        settings = report.intervals
        lines += ["", (f"[low, high]: bootstrap {settings['level']:.0%} percentile intervals of AP and AUC, "
                       f"{settings['resamples']} resamples of each generator's images stratified by class (a mean "
                       f"resamples its generators jointly), seed {settings['seed']}")]
    return "\n".join(lines) + "\n"


def write_report(report: EvalReport, path: str | Path, group: bool = False) -> None:
    """Write the table by extension: .md (percent), .csv or .json (fractions 0..1, empty/null if undefined: the
    interval columns ap_low, ap_high, auc_low, auc_high are empty/null without ``with_intervals``; the JSON's
    "intervals" says how they were made)."""
    path = Path(path)
    rows = report.table(group)
    if path.suffix == ".md":
        path.write_text(to_markdown(report, group), encoding="utf-8")
    elif path.suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as table_file:
            writer = csv.DictWriter(table_file, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows({key: "" if value is None else csv_text(value) for key, value in row_values(row).items()}
                             for row in rows)
    elif path.suffix == ".json":
        payload = {"detector": report.detector, "intervals": report.intervals,
                   "rows": [row_values(row) for row in rows],
                   "unreadable": [unreadable._asdict() for unreadable in report.unreadable]}
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    else:
        raise ValueError(f"{path}: report format from the extension must be .md, .csv or .json")


def plot_robustness(report: EvalReport, png_path: str | Path) -> None:
    """AP against strength, one panel per perturbation kind: a line per generator, the mean in bold."""
    from matplotlib.figure import Figure

    perturbed = [(row, parse_perturbations([row.perturbation])[0]) for row in report.table()
                 if row.perturbation != "none"]
    kinds = list(dict.fromkeys(perturbation.kind for _, perturbation in perturbed))
    if not kinds:
        raise ValueError("the report has no perturbed runs to plot (pass perturbations to evaluate)")
    clean = {row.generator: row.ap for row in report.table() if row.perturbation == "none"}
    fig = Figure(figsize=(5 * len(kinds), 4), layout="constrained")
    for ax, kind in zip(fig.subplots(1, len(kinds), squeeze=False)[0], kinds):
        for generator in dict.fromkeys(row.generator for row, _ in perturbed):
            points = sorted((perturbation.strength, row.ap) for row, perturbation in perturbed
                            if perturbation.kind == kind and row.generator == generator and row.ap is not None)
            if points:
                bold = generator == "mean"
                ax.plot(*zip(*points), marker="o", label=generator, linewidth=2.5 if bold else 1,
                        color="black" if bold else None)
        if clean.get("mean") is not None:
            ax.axhline(clean["mean"], linestyle="--", color="gray", label="mean, unperturbed")
        if kind == "jpeg":
            ax.invert_xaxis()  # stronger compression to the right
        ax.set(xlabel=STRENGTH_LABELS[kind], ylabel="AP", title=kind)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.savefig(png_path, dpi=120)
