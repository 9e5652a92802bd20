"""One validation pass: the centre-crop views of the held-out images through the training forward pass,
scored as ``ipdscan eval`` scores (``metrics.metrics``: AP, accuracies), with the mean BCE loss beside."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ipdscan.eval.metrics import metrics

from .data import Batch


@torch.no_grad()
def validate(logits: nn.Module, batches: Iterable[Batch], model_input: Callable[[torch.Tensor], torch.Tensor],
             note_unreadable: Callable[[Batch], None]) -> dict:
    """``logits`` (the model, switched to eval mode for the pass) over every batch; unreadable images are noted
    and left out."""
    logits.eval()
    scores, labels, loss = [], [], 0.0
    for batch in batches:
        note_unreadable(batch)
        if not len(batch.labels):
            continue
        batch_logits = logits(model_input(batch.crops)).cpu()
        loss += F.binary_cross_entropy_with_logits(batch_logits, batch.labels, reduction="sum").item()
        scores.append(torch.sigmoid(batch_logits))
        labels.append(batch.labels)
    logits.train()
    truth, predicted = (torch.cat(labels).numpy(), torch.cat(scores).numpy()) if labels else ([], [])
    return {**metrics(truth, predicted), "loss": loss / max(1, len(truth))}
