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
        rows = [replace(row, **metrics(y, s, threshold)) for row, (y, s) in zip(self.rows, self.samples)]
        return EvalReport(rows, self.detector, self.unreadable, self.samples)

    def table(self, group: bool = False) -> list[Row]:
        """Per perturbation: the generator rows, then (group=True) each group's mean, then the mean."""
        out = []
        for perturbation in dict.fromkeys(r.perturbation for r in self.rows):
            rows = [r for r in self.rows if r.perturbation == perturbation]
            out += rows
            if group:
                out += [mean_row(perturbation, g, [r for r in rows if r.group == g])
                        for g in dict.fromkeys(r.group for r in rows)]
            out.append(mean_row(perturbation, "", rows))
        return out


COLUMNS = ["perturbation", "generator", "group", "ap", "acc", "r_acc", "f_acc", "n_real", "n_fake", "n_unreadable"]


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def to_markdown(report: EvalReport, group: bool = False) -> str:
    """A Table III-style table, metrics in percent; '-' where a metric is undefined."""
    rows = report.table(group)
    perturbed = any(r.perturbation != "none" for r in rows)
    head = (["perturbation"] if perturbed else []) + ["generator"] + (["group"] if group else []) + \
           ["AP", "acc", "real acc", "fake acc", "real", "fake", "unreadable"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i < len(head) - 7 else "---:" for i in range(len(head))) + "|"]
    for r in rows:
        name = f"**{r.generator}**" if r.generator == "mean" else r.generator
        cells = ([r.perturbation] if perturbed else []) + [name] + ([r.group] if group else []) + \
                [percent(r.ap), percent(r.acc), percent(r.r_acc), percent(r.f_acc), str(r.n_real), str(r.n_fake), str(r.n_unreadable)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(report: EvalReport, path: str | Path, group: bool = False) -> None:
    """Write the table by extension: .md (percent), .csv or .json (fractions 0..1, empty/null if undefined)."""
    path = Path(path)
    rows = report.table(group)
    if path.suffix == ".md":
        path.write_text(to_markdown(report, group), encoding="utf-8")
    elif path.suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows({k: "" if v is None else csv_text(v) for k, v in asdict(r).items()} for r in rows)
    elif path.suffix == ".json":
        payload = {"detector": report.detector, "rows": [asdict(r) for r in rows],
                   "unreadable": [u._asdict() for u in report.unreadable]}
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    else:
        raise ValueError(f"{path}: report format from the extension must be .md, .csv or .json")


def plot_robustness(report: EvalReport, png_path: str | Path) -> None:
    """AP against strength, one panel per perturbation kind: a line per generator, the mean in bold."""
    from matplotlib.figure import Figure

    perturbed = [(r, parse_perturbations([r.perturbation])[0]) for r in report.table() if r.perturbation != "none"]
    kinds = list(dict.fromkeys(p.kind for _, p in perturbed))
    if not kinds:
        raise ValueError("the report has no perturbed runs to plot (pass perturbations to evaluate)")
    clean = {r.generator: r.ap for r in report.table() if r.perturbation == "none"}
    fig = Figure(figsize=(5 * len(kinds), 4), layout="constrained")
    for ax, kind in zip(fig.subplots(1, len(kinds), squeeze=False)[0], kinds):
        for generator in dict.fromkeys(r.generator for r, _ in perturbed):
            points = sorted((p.strength, r.ap) for r, p in perturbed
                            if p.kind == kind and r.generator == generator and r.ap is not None)
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
