"""The StyleGAN2 faces family: thispersondoesnotexist faces against real face photos (``train-faces``).

Not content-aligned (the fakes are not made from the reals), but both classes are 300 px JPEGs sharing one
quantisation table, so they are copied byte for byte: no codec step could tell them apart. Each file draws
its split from its own seed: a held-out ``test`` share of both classes for checking (``ipdscan eval
<corpus>/test``; ``ipdscan train`` leaves test/ folders alone), a share of the reals kept whole in
``calibration/``, then val and train.
"""
from __future__ import annotations

from pathlib import Path

from ipdscan.eval.labelled import image_files
from ipdscan.reports.publish import write_atomically

from .corpus_plan import source_rng

GENERATOR = "stylegan2_faces"
CLASSES = {"real": "0_real", "fake": "1_fake"}


def split_of(seed: int, name: str, label: str, test_fraction: float, val_fraction: float,
             calibration_fraction: float) -> str:
    draw = source_rng(seed, f"faces/{label}/{name}", "split").random()
    if draw < test_fraction:
        return "test"
    draw -= test_fraction
    if label == "real" and draw < calibration_fraction:
        return "calibration"
    draw -= calibration_fraction if label == "real" else 0.0
    return "val" if draw < val_fraction else "train"


def faces_files(faces: Path) -> list[tuple[str, str, Path]]:
    """(label, name, file) for every face image, reals then fakes."""
    out = []
    for label in CLASSES:
        files = [Path(path) for path in image_files(faces / label)]
        if not files:
            raise RuntimeError(f"{faces / label}: no images (expected train-faces/real and train-faces/fake)")
        out += [(label, path.relative_to(faces / label).as_posix().replace("/", "_"), path) for path in files]
    return out


def trained_files(faces: Path, seed: int, val_fraction: float, calibration_fraction: float,
                  test_fraction: float = 0.15) -> list[Path]:
    """The face files a model trained on the corpus sees (train and val), for ``calibrate --exclude``."""
    return [path for label, name, path in faces_files(faces)
            if split_of(seed, name, label, test_fraction, val_fraction, calibration_fraction) in ("train", "val")]


def copy_faces(faces: Path, out: Path, seed: int, test_fraction: float = 0.15, val_fraction: float = 0.1,
               calibration_fraction: float = 0.1) -> dict:
    """Copy ``faces/{real,fake}`` into the corpus; returns counts per split and class."""
    counts: dict[str, dict[str, int]] = {}
    for label, name, path in faces_files(faces):
        split = split_of(seed, name, label, test_fraction, val_fraction, calibration_fraction)
        target = (out / "calibration" / f"faces_{name}" if split == "calibration"
                  else out / split / GENERATOR / CLASSES[label] / name)
        if not target.is_file():  # files are written whole or not at all, so a rerun copies only what is missing
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, lambda file: file.write(path.read_bytes()), binary=True)
        counts.setdefault(split, {}).setdefault(label, 0)
        counts[split][label] += 1
    return counts
