"""Evaluation on labelled folders: per-generator AP / accuracy exactly as CNNDetection's validate.py.

Labelled folders are recognised by name, at any depth below a root (``LABELS``):

    CNNSpot    <root>/<generator>[/<class>]/{0_real,1_fake}      (also <root>/{train,val,test}/...)
    GenImage   <root>/<generator>/imagenet_*/{train,val}/{nature,ai}

A *generator* is the first folder below the root, not counting split folders (train / val /
test); everything labelled beneath it is pooled, as CNNDetection pools ProGAN's 20 classes. A
root that holds 0_real/1_fake itself is one generator named after the root. The *group* is the
root's name, so one root per dataset gives Table III's per-dataset averages.

Every image goes through the scan's path (``ipdscan.decode``, centre crop, ``Detector.score``), a
perturbation (JPEG, blur, resize) applied to the decoded image before the crop; a file that cannot
be decoded is counted per generator and left out of its metrics.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageFilter
from sklearn.metrics import accuracy_score, average_precision_score
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.functional import pil_to_tensor

from .decode import decode
from .preprocess import Preprocessing, crop
from .runtime import default_workers
from .score import Detector
from .sources import iter_items, walk_tree

LABELS = {"0_real": 0, "nature": 0, "1_fake": 1, "ai": 1}  # by name, never by sort order
SPLITS = ("train", "val", "test")
EVAL_SPLIT_PREFERENCE = ("test", "val", "", "train")  # "" = not under a split folder


class DatasetError(ValueError):
    """A root that holds no usable labelled images; the message names the root and the layouts read."""


# ---------------------------------------------------------------------------------------------- layouts

@dataclass(frozen=True)
class LabelledFolder:
    path: Path
    label: int  # 0 real, 1 AI-generated
    generator: str
    split: str  # train | val | test | "" (not under a split folder)


def labelled_folders(root: str | Path) -> list[LabelledFolder]:
    """Every 0_real / 1_fake / nature / ai folder below ``root``, in sorted walk order.

    Walked as a scan walks folders (``sources.walk_tree``): symlinked folders are followed, never round a loop
    nor twice into one folder, and hidden folders are skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    found = []
    for path, info, error in walk_tree(str(root), root.stat(), enter=lambda path: os.path.basename(path) not in LABELS):
        here = Path(path)
        if error is not None or not stat.S_ISDIR(info.st_mode) or here.name not in LABELS:
            continue  # everything below a labelled folder carries its label: walk_tree does not enter it
        parents = here.relative_to(root).parts[:-1]
        split = next((part for part in reversed(parents) if part in SPLITS), "")
        names = [part for part in parents if part not in SPLITS]
        found.append(LabelledFolder(here, LABELS[here.name], names[0] if names else root.resolve().name, split))
    return found


def no_labelled_folders(root) -> DatasetError:
    return DatasetError(f"{root}: no labelled folders below it; expected CNNSpot ({{0_real,1_fake}}) "
                        "or GenImage ({nature,ai}) folders at any depth")


def image_files(folder: Path) -> list[str]:
    """The image files below ``folder`` that a scan of it would find (by name or first bytes; hidden ones
    skipped; symlink loops walked once), in the scan's order: depth first, sorted by name at each level."""
    return [item.input for item in iter_items([str(folder)]) if not item.error_code]


@dataclass
class GeneratorSet:
    name: str  # relative to its root: the first folder below it, split folders not counted
    group: str  # the root's name
    real_paths: list[str] = field(default_factory=list)
    fake_paths: list[str] = field(default_factory=list)


def find_generators(roots: Iterable[str | Path]) -> list[GeneratorSet]:
    """One GeneratorSet per generator below each root, from its preferred split (test, val, unsplit, train).

    GenImage keeps train and val side by side: evaluation reads val. Raises DatasetError for a root
    without labelled folders.
    """
    sets = []
    for root in roots:
        folders = labelled_folders(root)
        if not folders:
            raise no_labelled_folders(root)
        group = Path(root).resolve().name
        for name in dict.fromkeys(f.generator for f in folders):  # first-seen order
            mine = [f for f in folders if f.generator == name]
            split = next(s for s in EVAL_SPLIT_PREFERENCE if any(f.split == s for f in mine))
            chosen = GeneratorSet(name, group)
            for f in mine:
                if f.split == split:
                    (chosen.fake_paths if f.label else chosen.real_paths).extend(image_files(f.path))
            if chosen.real_paths or chosen.fake_paths:
                sets.append(chosen)
    return sets


# ---------------------------------------------------------------------------------------------- metrics

def metrics(y_true: Sequence[int], scores: Sequence[float], threshold: float = 0.5) -> dict:
    """AP, accuracy, real / fake accuracy, as CNNDetection's validate.py (score > threshold is fake).

    AP needs both classes: with no reals or no fakes it is None, and so are r_acc / f_acc for the
    missing class (and acc for an empty set).
    """
    y = np.asarray(y_true, dtype=int)
    s = np.asarray(scores, dtype=float)
    real, fake = y == 0, y == 1
    return {
        "ap": float(average_precision_score(y, s)) if real.any() and fake.any() else None,
        "acc": float(accuracy_score(y, s > threshold)) if len(y) else None,
        "r_acc": float(accuracy_score(y[real], s[real] > threshold)) if real.any() else None,
        "f_acc": float(accuracy_score(y[fake], s[fake] > threshold)) if fake.any() else None,
        "n_real": int(real.sum()),
        "n_fake": int(fake.sum()),
    }


# ---------------------------------------------------------------------------------------------- perturbations

def jpeg_reencode(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def gaussian_blur(image: Image.Image, sigma: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=sigma)) if sigma > 0 else image  # PIL's radius is sigma


def rescale(image: Image.Image, factor: float) -> Image.Image:
    """Bilinear resize by ``factor``; PIL widens the filter when shrinking, so downscaling is antialiased."""
    w, h = image.size
    return image.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.BILINEAR)


PERTURBATIONS = {"jpeg": jpeg_reencode, "blur": gaussian_blur, "resize": rescale}
STRENGTH_LABELS = {"jpeg": "JPEG quality", "blur": "Gaussian blur sigma", "resize": "resize factor"}


@dataclass(frozen=True)
class Perturbation:
    kind: str  # jpeg (quality 1..100) | blur (sigma >= 0) | resize (factor > 0)
    strength: float

    def __str__(self) -> str:
        return f"{self.kind}={self.strength:g}"

    def __call__(self, image: Image.Image) -> Image.Image:
        return PERTURBATIONS[self.kind](image, self.strength)


def parse_perturbations(specs: Iterable[str]) -> list[Perturbation]:
    """["jpeg=95,75,50", "blur=1,2", "resize=0.5"] -> one Perturbation per strength. Raises ValueError."""
    parsed = []
    for spec in specs:
        kind, _, values = spec.partition("=")
        kind = kind.strip().lower()
        if kind not in PERTURBATIONS or not values:
            raise ValueError(f"perturbation {spec!r}: write KIND=V1,V2,... with KIND one of {', '.join(PERTURBATIONS)}")
        for value in values.split(","):
            try:
                strength = float(value)
            except ValueError:
                raise ValueError(f"perturbation {spec!r}: {value!r} is not a number") from None
            valid = {"jpeg": 1 <= strength <= 100 and strength == int(strength), "blur": 0 <= strength <= 50,
                     "resize": 0 < strength <= 8}[kind]
            if not valid:
                raise ValueError(f"perturbation {spec!r}: {value} is out of range "
                                 "(jpeg: integer quality 1..100; blur: sigma 0..50; resize: factor in (0, 8])")
            parsed.append(Perturbation(kind, strength))
    return parsed


# ---------------------------------------------------------------------------------------------- data

class Unreadable(NamedTuple):
    """What a dataset returns for a file it cannot decode; collates drop it and count it."""
    path: str
    reason: str


def guarded(view, path: str) -> torch.Tensor | Unreadable:
    """``view(path)`` -> uint8 crop, or Unreadable on any failure: a bad file costs one image, never the run."""
    try:
        return view(path)
    except Exception as exc:
        return Unreadable(path, (getattr(exc, "message", "") or f"{type(exc).__name__}: {exc}")[:300])


class EvalImages(Dataset):
    """(index, crop) per image: decoded as a scan decodes, optionally perturbed, then the scan's centre crop."""

    def __init__(self, paths: list[str], preprocessing: Preprocessing, perturbation: Perturbation | None = None):
        self.paths, self.preprocessing, self.perturbation = paths, preprocessing, perturbation

    def __len__(self):
        return len(self.paths)

    def view(self, path: str) -> torch.Tensor:
        pixels = decode(Path(path).read_bytes()).pixels
        if self.perturbation is not None:
            image = Image.fromarray(pixels.permute(1, 2, 0).numpy())
            pixels = pil_to_tensor(self.perturbation(image))
        return crop(pixels, self.preprocessing)

    def __getitem__(self, index):
        return index, guarded(self.view, self.paths[index])


def collate_indexed(items):
    """[(index, crop | Unreadable)] -> (indices, (B,3,c,c) uint8 crops, [(index, Unreadable)])."""
    good = [(i, x) for i, x in items if not isinstance(x, Unreadable)]
    bad = [(i, x) for i, x in items if isinstance(x, Unreadable)]
    crops = torch.stack([x for _, x in good]) if good else torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    return [i for i, _ in good], crops, bad


# ---------------------------------------------------------------------------------------------- evaluation

@dataclass
class Row:
    generator: str  # "mean" for averages
    group: str  # the root's name; "" on the overall mean
    perturbation: str  # "none" or e.g. "jpeg=75"
    ap: float | None
    acc: float | None
    r_acc: float | None
    f_acc: float | None
    n_real: int
    n_fake: int
    n_unreadable: int = 0


@dataclass
class EvalReport:
    rows: list[Row]  # one per (perturbation, generator), perturbations in run order
    detector: dict  # name, variant, sha256 of the weights
    unreadable: list[Unreadable] = field(default_factory=list)  # from the unperturbed run

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


def mean_row(perturbation: str, group: str, rows: list[Row]) -> Row:
    """Unweighted mean over generators (as papers report it), of the values each defines; counts are summed."""
    def mean(key):
        values = [getattr(r, key) for r in rows if getattr(r, key) is not None]
        return float(np.mean(values)) if values else None
    return Row("mean", group, perturbation, mean("ap"), mean("acc"), mean("r_acc"), mean("f_acc"),
               sum(r.n_real for r in rows), sum(r.n_fake for r in rows), sum(r.n_unreadable for r in rows))


def evaluate(roots: Iterable[str | Path], detector: Detector, *, batch_size: int = 32, workers: int | None = None,
             perturbations: Sequence[Perturbation] | None = None, scores_out: str | Path | None = None,
             threshold: float = 0.5, progress: bool = False) -> EvalReport:
    """Score every image below ``roots`` (clean, then once per perturbation) and compute per-generator metrics.

    ``scores_out`` writes one CSV line per image and run: path, generator, group, label, perturbation,
    score, error. Raises DatasetError when a root has no labelled folders.
    """
    from tqdm import tqdm

    sets = find_generators(roots)
    paths, labels, owner = [], [], []
    for k, s in enumerate(sets):
        for label, files in ((0, s.real_paths), (1, s.fake_paths)):
            paths += files
            labels += [label] * len(files)
            owner += [k] * len(files)
    labels_np, owner_np = np.array(labels, dtype=int), np.array(owner, dtype=int)
    workers = default_workers(workers, detector.device)
    scores_file = open(scores_out, "w", newline="") if scores_out else None
    writer = csv.writer(scores_file) if scores_file else None
    if writer:
        writer.writerow(["path", "generator", "group", "label", "perturbation", "score", "error"])
    rows, first_unreadable = [], None
    try:
        for perturbation in [None, *(perturbations or [])]:
            tag = str(perturbation) if perturbation else "none"
            loader = DataLoader(EvalImages(paths, detector.preprocessing, perturbation), batch_size=batch_size,
                                num_workers=workers, collate_fn=collate_indexed,
                                pin_memory=detector.device.type == "cuda")
            scores = np.full(len(paths), np.nan)
            errors = {}
            for indices, crops, bad in tqdm(loader, desc=f"eval {tag}", unit="batch", disable=not progress):
                scores[indices] = detector.score(crops).numpy()
                errors.update({i: u for i, u in bad})
            if first_unreadable is None:
                first_unreadable = [errors[i] for i in sorted(errors)]
            for k, s in enumerate(sets):
                mine = owner_np == k
                ok = mine & ~np.isnan(scores)
                m = metrics(labels_np[ok], scores[ok], threshold)
                rows.append(Row(s.name, s.group, tag, **m, n_unreadable=int((mine & np.isnan(scores)).sum())))
            if writer:
                for i, path in enumerate(paths):
                    s = sets[owner[i]]
                    # 9 significant digits give back the float32 score exactly: AP recomputed from this file
                    # matches the table even where scores differ only in the 7th decimal.
                    score = "" if math.isnan(scores[i]) else f"{scores[i]:.9g}"
                    writer.writerow([path, s.name, s.group, labels[i], tag, score, errors[i].reason if i in errors else ""])
    finally:
        if scores_file:
            scores_file.close()
    info = {"name": detector.name, "variant": detector.variant, "sha256": detector.sha256}
    return EvalReport(rows, info, first_unreadable or [])


# ---------------------------------------------------------------------------------------------- writers

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
        path.write_text(to_markdown(report, group))
    elif path.suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in asdict(r).items()} for r in rows)
    elif path.suffix == ".json":
        payload = {"detector": report.detector, "rows": [asdict(r) for r in rows],
                   "unreadable": [u._asdict() for u in report.unreadable]}
        path.write_text(json.dumps(payload, indent=2) + "\n")
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
