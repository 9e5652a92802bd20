"""A fitted frozen-feature probe (``trainer/probe.py``'s ``probe.npz``), alone or averaged with IPD-Net checkpoints,
as an ipdscan ONNX export that ``ipdscan scan --weights FILE.onnx`` scores with on the light install (issue 31).

    python -m trainer.export_probe ../runs/probe/probe.npz --member weights/ipdnet-layer2-corpus-v3.pt \\
        --calibration ../data/corpus-v4/calibration --name lite0-probe-v3-ensemble --out ../runs/ensemble.onnx

The graph takes the scan's uint8 crops (the paper's centre window: reflect-pad 224, crop 224) and returns
P(AI-generated). The probe's member is EfficientNet-Lite's pooled stage statistics (``feature_cache.Extractor``),
standardised and weighted as fitted, over its temperature; an IPD-Net member is its checkpoint's scoring path
(``export.ScoringGraph``, before the sigmoid). With one member the score is the probe's own probability and its
threshold the probe's. With several, each member's logit is put on one scale by the calibration photos (minus
their mean, over their standard deviation, as ``trainer.ensemble`` does), the score is the sigmoid of the members'
mean, and the threshold the lowest that flags at most ``--max-flagged`` of the calibration photos, scored here
exactly as a scan crops them. The metadata names every member (the trunk's pretrained weights with their sha256
and licence, each checkpoint's sha256) and the calibration; ONNX Runtime must agree with torch within
``export.MAX_DIFFERENCE`` on the calibration crops, or nothing is written.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ipdscan.eval.labelled import image_files, read_pixels
from ipdscan.model.efficientnet_lite import PRETRAINED, load_lite
from ipdscan.model.export import MAX_DIFFERENCE, ScoringGraph, graph_bytes
from ipdscan.model.onnx_backend import ONNX_FORMAT, ONNX_FORMAT_VERSION, opened
from ipdscan.model.preprocess import Preprocessing, crop
from ipdscan.model.torch_preprocess import to_model_input
from ipdscan.model.weights import bytes_sha256, load_checkpoint, sidecar
from ipdscan.reports.publish import write_atomically
from trainer.calibrate import flagged_share, require_photos, threshold_for
from trainer.ensemble import calibration_scale
from trainer.feature_cache import pooled_statistics

PROBE_INPUT = Preprocessing(size=224)  # the probe sees the centre window at the image's own resolution


class ProbeLogit(nn.Module):
    """uint8 crops (B, 3, 224, 224) -> the probe's logit (B,), as ``probe.Probe.logits`` computes it."""

    def __init__(self, probe: dict):
        super().__init__()
        about = json.loads(str(probe["about"]))
        self.trunk_name = about["extractor"].split("-")[0]
        self.trunk = load_lite(self.trunk_name).eval()
        for name in ("mean", "scale", "weights"):
            self.register_buffer(name, torch.as_tensor(np.asarray(probe[name], np.float32)))
        self.bias, self.temperature = float(probe["bias"]), float(probe["temperature"])

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        features = pooled_statistics(self.trunk.forward_features(crops.float() / 255))  # (B, 2 * sum(C))
        return (((features - self.mean) / self.scale) @ self.weights + self.bias) / self.temperature


class IPDNetLogit(ScoringGraph):
    """uint8 crops -> an IPD-Net checkpoint's logit (B,): its scoring path before the sigmoid."""

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.model.forward_pooled(to_model_input(crops, self.preprocessing))


class AveragedScore(nn.Module):
    """uint8 crops -> sigmoid of the members' standardised logits' mean (one member: its own probability)."""

    def __init__(self, members: list[nn.Module], centres: list[float], spreads: list[float]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("centres", torch.tensor(centres, dtype=torch.float32))
        self.register_buffer("spreads", torch.tensor(spreads, dtype=torch.float32))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:  # (B, 3, 224, 224) uint8 -> (B,) float32
        logits = torch.stack([member(crops) for member in self.members], 1)  # (B, members)
        return torch.sigmoid(((logits - self.centres) / self.spreads).mean(1))


def scan_crops(paths: list[str], preprocessing: Preprocessing) -> np.ndarray:
    """(N, 3, crop, crop) uint8: each photo decoded and cropped as ``ipdscan scan`` does."""
    return np.stack([crop(np.asarray(read_pixels(path)), preprocessing) for path in paths])


@torch.inference_mode()
def batched(module: nn.Module, crops: np.ndarray, batch: int = 32) -> np.ndarray:
    return torch.cat([module(torch.from_numpy(crops[start:start + batch]))
                      for start in range(0, len(crops), batch)]).double().numpy()


def build(probe_path: Path, checkpoints: list[Path], calibration: list[Path], max_flagged: float,
          name: str, log=print) -> tuple[bytes, dict]:
    """The export's bytes and a summary: the graph, calibrated and checked against ONNX Runtime."""
    probe_sha256 = bytes_sha256(probe_path.read_bytes())
    probe_file = np.load(probe_path)
    probe = ProbeLogit(probe_file)
    checkpoints_loaded = [load_checkpoint(path) for path in checkpoints]
    preprocessing = checkpoints_loaded[0].preprocessing if checkpoints_loaded else PROBE_INPUT
    for checkpoint in checkpoints_loaded:
        if (checkpoint.preprocessing.pad, checkpoint.preprocessing.crop) != (PROBE_INPUT.pad, PROBE_INPUT.crop):
            raise ValueError(f"{checkpoint.name} crops {checkpoint.preprocessing.crop} px from a "
                             f"{checkpoint.preprocessing.pad} px pad; the probe takes the paper's 224 from 224")
    members = [probe, *(IPDNetLogit(checkpoint) for checkpoint in checkpoints_loaded)]
    paths = [path for folder in calibration for path in image_files(folder)]
    require_photos(len(paths), calibration)
    crops = scan_crops(paths, preprocessing)
    log(f"scoring {len(paths)} calibration photos with {len(members)} member(s)")
    if len(members) == 1:
        graph = AveragedScore(members, [0.0], [1.0])  # the mean of one unscaled logit: the probe's probability
    else:
        centres, spreads = zip(*(calibration_scale(batched(member, crops)) for member in members))
        graph = AveragedScore(members, list(centres), list(spreads))
    graph.eval()
    reference = batched(graph, crops)
    threshold = float(probe_file["threshold"]) if len(members) == 1 else threshold_for(reference, max_flagged)
    trunk = PRETRAINED[probe.trunk_name]
    probe_about = json.loads(str(probe_file["about"]))
    metadata = {
        "format": ONNX_FORMAT, "format_version": ONNX_FORMAT_VERSION, "name": name,
        "config": {"variant": "lite0-probe" if len(members) == 1 else "ensemble",
                   "members": [f"{probe.trunk_name} probe", *(c.name for c in checkpoints_loaded)]},
        "preprocessing": preprocessing.to_dict(),
        "provenance": {"probe": {**probe_about, "regularisation": float(probe_file["regularisation"]),
                                 "temperature": probe.temperature, "file_sha256": probe_sha256},
                       "trunk": {"name": trunk.name, "file": trunk.file, "sha256": trunk.sha256, "source":
                                 f"{trunk.source} {trunk.package.replace('_', '-')}==0.1.0", "licence": trunk.licence},
                       "checkpoints": [{"name": c.name, "sha256": c.sha256} for c in checkpoints_loaded],
                       "combination": "sigmoid of the mean of the members' logits, each standardised on the "
                                      "calibration photos" if len(members) > 1 else "the probe alone"},
        "calibration": {"threshold": threshold, "photos": len(paths), "max_flagged": max_flagged,
                        "flagged": int((reference >= threshold).sum()),
                        "folders": [str(folder) for folder in calibration],
                        "centres": graph.centres.tolist(), "spreads": graph.spreads.tolist()},
        "threshold": threshold,
        "source_sha256": probe_sha256,
        "source_content_sha256": probe_sha256,
    }
    data = graph_bytes(graph, preprocessing.crop, metadata)
    exported = opened(data, bytes_sha256(data), Path(f"{name}.onnx"))
    difference = float(np.abs(exported.score(crops).astype(np.float64) - reference).max())
    if not difference <= MAX_DIFFERENCE:
        raise ValueError(f"ONNX Runtime scores differently from torch: max |difference| {difference:.2e} > "
                         f"{MAX_DIFFERENCE:g} over {len(crops)} calibration crops; nothing written")
    return data, {"sha256": exported.sha256, "threshold": threshold, "max_difference": difference,
                  "flagged": metadata["calibration"]["flagged"], "photos": len(paths)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("probe", type=Path, help="a probe.npz written by trainer.probe")
    parser.add_argument("--member", type=Path, nargs="*", default=[], help="IPD-Net checkpoints averaged with it")
    parser.add_argument("--calibration", type=Path, nargs="+", required=True,
                        help="folders of whole real photos none of the members trained on")
    parser.add_argument("--max-flagged", type=flagged_share, default=0.05)
    parser.add_argument("--name", required=True, help="the detector's name, as the report header records it")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        data, summary = build(args.probe, args.member, args.calibration, args.max_flagged, args.name)
        write_atomically(args.out, lambda f: f.write(data), binary=True)
        write_atomically(sidecar(args.out), lambda f: f.write(f"{summary['sha256']}  {args.out.name}\n"))
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: sha256 {summary['sha256']}, threshold {summary['threshold']:.4f} "
          f"({summary['flagged']} of {summary['photos']} calibration photos flagged), ONNX Runtime vs torch "
          f"max |difference| {summary['max_difference']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
