"""Acceptance checks for a detector we ship: format bias, dev-set AP (clean, JPEG q75, blur σ=1), the shipped
threshold on held-out real photos, shortcut checks (``--shortcuts``: trainer/shortcuts.py), examples.

    python -m trainer.check_default --weights weights/ipdnet-layer2-corpus-v3.pt \\
        --reals ../shared/data/dev-eval --dev ../shared/data/dev-eval --examples examples --out weights/CHECKS.md

Format bias: real photos scored as they are, re-saved as JPEG at q75..95, and as PNG and JPEG copies
of the same pixels. A detector that learned the codec instead of the generator moves between these;
the target is a mean difference below 0.05 each way. Threshold: the share of the --reals photos (none
of them used in training or calibration) that the weights' own threshold flags, target at most 10%;
the examples must fall on their side of it (real-* below, fake-* at or above).
"""
from __future__ import annotations

import argparse
import io
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ipdscan import ScanOptions, load_backend, scan
from ipdscan.eval.eval_report import to_markdown
from ipdscan.eval.evaluate import evaluate
from ipdscan.eval.perturbations import parse_perturbations
from ipdscan.scanning.sources import iter_items
from ipdscan.text import threshold_text
from trainer.shortcuts import SHIFT_LIMIT, balanced_sample, shifts_markdown, shortcut_shifts

BIAS_LIMIT = 0.05
FLAGGED_LIMIT = 0.10  # of dev-eval's real photos at the shipped threshold (issue 20; 5% is the calibration photos' own)
# issues 11 and 20; stylegan2_faces is corpus v3's held-out test split (build_corpus --faces: <corpus>/test)
AP_TARGETS = {"sentry_diffusion": 0.85, "sentry_stylegan3": 0.60, "grip_gans": 0.60, "stylegan2_faces": 0.90}
AP_TARGET = 0.75  # other dev folders with at least 40 images; 0.5 for smaller ones


def real_photos(roots: list[str], limit: int, seed: int) -> list[str]:
    """Real photos below ``roots``: files in 0_real/nature folders when there are any, else every image."""
    paths = [item.input for item in iter_items(roots) if not item.error_code]
    labelled = [path for path in paths if {"0_real", "nature"} & set(Path(path).parts)]
    chosen = labelled or paths
    random.Random(seed).shuffle(chosen)
    return sorted(chosen[:limit])


def variants(path: str, rng: random.Random) -> dict[str, bytes]:
    """The same real photo as it is, re-saved as JPEG q75..95, and as PNG and JPEG (q90) copies."""
    original = Path(path).read_bytes()
    pixels = Image.open(io.BytesIO(original)).convert("RGB")

    def saved(image_format: str, **params) -> bytes:
        buffer = io.BytesIO()
        pixels.save(buffer, image_format, **params)
        return buffer.getvalue()

    return {"original": original, "resaved_jpeg": saved("JPEG", quality=rng.randint(75, 95)),
            "png_copy": saved("PNG"), "jpeg_copy": saved("JPEG", quality=90)}


def format_bias(detector, photos: list[str], workdir: Path, seed: int) -> tuple[dict[str, float], list[float]]:
    """Mean score per form of the photos, and the originals' scores."""
    rng = random.Random(seed)
    files: dict[str, list[str]] = {}
    for i, path in enumerate(photos):
        for kind, data in variants(path, rng).items():
            target = workdir / kind / f"{i:05d}{'.png' if kind == 'png_copy' else '.jpg'}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            files.setdefault(kind, []).append(str(target))
    means, originals = {}, []
    for kind, paths in files.items():
        scores = [result.score for result in scan(paths, detector, options=ScanOptions(workers=1)) if result.ok]
        means[kind] = float(np.mean(scores))
        originals = scores if kind == "original" else originals
    return means, originals


def scanned_scores(detector, workdir: Path):
    """A shortcut scorer through the scan itself: each image saved as a lossless PNG, then scanned."""
    def score(images: list[np.ndarray]) -> np.ndarray:
        workdir.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, image in enumerate(images):
            paths.append(str(workdir / f"{index:05d}.png"))
            Image.fromarray(image).save(paths[-1])
        results = scan(paths, detector, options=ScanOptions(workers=1))
        return np.array([result.score if result.ok else np.nan for result in results])
    return score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.check_default", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="checkpoint or ONNX export (default: the shipped default)")
    parser.add_argument("--reals", nargs="+", required=True, help="folders of real photos for the format-bias check")
    parser.add_argument("--dev", nargs="+", required=True, help="labelled dev-eval roots (CNNSpot layout)")
    parser.add_argument("--examples", help="folder of example images to score")
    parser.add_argument("--shortcuts", nargs="+", default=[],
                        help="labelled roots for the shortcut checks (trainer/shortcuts.py), e.g. dev-eval 2")
    parser.add_argument("--shortcut-per-class", type=int, default=10, help="reals and fakes per generator checked")
    parser.add_argument("--n-reals", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="write the results as markdown here")
    parser.add_argument("--workdir", default="data/check_default")
    args = parser.parse_args(argv)

    detector = load_backend(args.weights, args.device)
    lines = [f"# Acceptance checks: {detector.name}", "",
             f"weights sha256 `{detector.sha256}`, variant {detector.variant}, device {detector.device}, "
             f"precision {getattr(detector, 'precision', 'fp32')}", "",
             "Command: `python -m trainer.check_default " + " ".join(argv if argv is not None else sys.argv[1:]) + "`", ""]
    passed = True

    photos = real_photos(args.reals, args.n_reals, args.seed)
    means, originals = format_bias(detector, photos, Path(args.workdir), args.seed)
    resave, copies = abs(means["resaved_jpeg"] - means["original"]), abs(means["png_copy"] - means["jpeg_copy"])
    bias_ok = resave < BIAS_LIMIT and copies < BIAS_LIMIT
    passed &= bias_ok
    lines += ["## Format bias", "", f"{len(photos)} real photos; mean score per form:", "",
              "| original | re-saved JPEG q75–95 | PNG copy | JPEG q90 copy |", "|---:|---:|---:|---:|",
              f"| {means['original']:.4f} | {means['resaved_jpeg']:.4f} | {means['png_copy']:.4f} | {means['jpeg_copy']:.4f} |",
              "", f"- re-saved vs original: |Δ| = {resave:.4f} (target < {BIAS_LIMIT}) — {'pass' if resave < BIAS_LIMIT else 'FAIL'}",
              f"- PNG vs JPEG copy: |Δ| = {copies:.4f} (target < {BIAS_LIMIT}) — {'pass' if copies < BIAS_LIMIT else 'FAIL'}", ""]

    threshold = detector.threshold
    flagged = float(np.mean(np.array(originals) >= threshold)) if originals else float("nan")
    flagged_ok = flagged <= FLAGGED_LIMIT
    passed &= flagged_ok
    lines += ["## Shipped threshold", "", f"threshold {threshold_text(threshold)} ({'calibrated: ' + str(detector.calibration.get('photos')) + ' held-out photos' if detector.calibration else 'uncalibrated default'})",
              "", f"- {len(originals)} real photos above (never trained or calibrated on) flagged at it: "
              f"{100 * flagged:.1f}% (target ≤ {100 * FLAGGED_LIMIT:.0f}%) — {'pass' if flagged_ok else 'FAIL'}", ""]

    report = evaluate(args.dev, detector, perturbations=parse_perturbations(["jpeg=75", "blur=1"]), workers=1)
    lines += ["## Dev-eval (AP, accuracy at 0.5, real and fake accuracy, in %)", "", to_markdown(report)]
    for row in report.table():
        if row.perturbation != "none" or row.generator == "mean":
            continue
        target = AP_TARGETS.get(row.generator, AP_TARGET if row.n_real + row.n_fake >= 40 else 0.5)
        ok = row.ap is not None and row.ap >= target
        passed &= ok
        lines.append(f"- {row.generator}: AP {100 * (row.ap or 0):.1f} (target ≥ {100 * target:.0f}) — {'pass' if ok else 'FAIL'}")
    at_threshold = report.at_threshold(threshold)
    lines += ["", f"### Dev-eval accuracy at the shipped threshold {threshold_text(threshold)} (in %)", "", to_markdown(at_threshold), ""]

    if args.shortcuts:
        images, labels = balanced_sample(args.shortcuts, args.shortcut_per_class, args.seed)
        shifts = shortcut_shifts(scanned_scores(detector, Path(args.workdir) / "shortcuts"), images, labels, args.seed)
        passed &= all(abs(shift) < SHIFT_LIMIT for shift in shifts.values())
        lines += ["## Shortcut checks", "", *shifts_markdown(shifts, (labels.count(0), labels.count(1))), ""]

    if args.examples:
        lines += ["## Examples", "", f"real-* must score below the threshold {threshold_text(threshold)}, fake-* at or above it", "",
                  "| file | score | label | as expected |", "|---|---:|---|---|"]
        for result in scan([args.examples], detector, options=ScanOptions(workers=0)):
            score = f"{result.score:.3f}" if result.ok else result.error_code
            expected = "ai" if Path(result.input).name.startswith("fake") else "real"
            ok = result.ok and result.label == expected
            passed &= ok
            lines.append(f"| {Path(result.input).name} | {score} | {result.label} | {'yes' if ok else 'NO'} |")
        lines.append("")
    lines.append(f"**Overall: {'all targets met' if passed else 'some targets missed (see FAIL lines)'}**")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
