"""An evaluation's result: per-generator rows, and the table, file and plot made from them."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .labelled import Unreadable
from .metrics import Row, mean_row, metrics
from .perturbations import STRENGTH_LABELS, parse_perturbations
from .text import csv_text


@dataclass
class EvalReport:
    rows: list[Row]  # one per (perturbation, generator), perturbations in run order
    detector: dict  # name, variant, sha256 of the weights
    unreadable: list[Unreadable] = field(default_factory=list)  # from the unperturbed run
    # Per row, the (labels, scores) it was computed from, so that accuracy can be re-read at another threshold.
    samples: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)

    def at_threshold(self, threshold: float) -> EvalReport:
        """The same scores with accuracies at ``threshold`` instead (AP does not depend on it); no rescoring."""
        if len(self.samples) != len(self.rows):
            raise ValueError("this report does not hold its scores (made by evaluate?)")
        rows = [replace(row, **metrics(truth, scores, threshold)) for row, (truth, scores) in zip(self.rows, self.samples)]
        return EvalReport(rows, self.detector, self.unreadable, self.samples)

    def table(self, group: bool = False) -> list[Row]:
        """Per perturbation: the generator rows, then (group=True) each group's mean, then the mean."""
        out = []
        for perturbation in dict.fromkeys(row.perturbation for row in self.rows):
            rows = [row for row in self.rows if row.perturbation == perturbation]
            out += rows
            if group:
                out += [mean_row(perturbation, name, [row for row in rows if row.group == name])
                        for name in dict.fromkeys(row.group for row in rows)]
            out.append(mean_row(perturbation, "", rows))
        return out


COLUMNS = ["perturbation", "generator", "group", "ap", "acc", "r_acc", "f_acc", "n_real", "n_fake", "n_unreadable"]


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def to_markdown(report: EvalReport, group: bool = False) -> str:
    """A Table III-style table, metrics in percent; '-' where a metric is undefined."""
    rows = report.table(group)
    perturbed = any(row.perturbation != "none" for row in rows)
    head = (["perturbation"] if perturbed else []) + ["generator"] + (["group"] if group else []) + \
           ["AP", "acc", "real acc", "fake acc", "real", "fake", "unreadable"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if column < len(head) - 7 else "---:" for column in range(len(head))) + "|"]
    for row in rows:
        name = f"**{row.generator}**" if row.generator == "mean" else row.generator
        cells = ([row.perturbation] if perturbed else []) + [name] + ([row.group] if group else []) + \
                [percent(row.ap), percent(row.acc), percent(row.r_acc), percent(row.f_acc), str(row.n_real),
                 str(row.n_fake), str(row.n_unreadable)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(report: EvalReport, path: str | Path, group: bool = False) -> None:
    """Write the table by extension: .md (percent), .csv or .json (fractions 0..1, empty/null if undefined)."""
    path = Path(path)
    rows = report.table(group)
    if path.suffix == ".md":
        path.write_text(to_markdown(report, group), encoding="utf-8")
    elif path.suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as table_file:
            writer = csv.DictWriter(table_file, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows({key: "" if value is None else csv_text(value) for key, value in asdict(row).items()}
                             for row in rows)
    elif path.suffix == ".json":
        payload = {"detector": report.detector, "rows": [asdict(row) for row in rows],
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
