"""Training's user errors are QRDistillErrors (one line, exit 2 in the CLI), not tracebacks."""

from __future__ import annotations

import pytest
import torch
from training_paths import make_paths

from qrdistill.errors import CheckpointMismatch, DataError, QRDistillError
from qrdistill.models import load_tokenizer
from qrdistill.training import checkpoint
from qrdistill.training.data import build_data
from qrdistill.utils.io import write_jsonl


def test_no_trainable_items_is_a_data_error(tmp_path, make_config):
    wrong = tmp_path / "wrong.jsonl"
    write_jsonl(wrong, [p.model_copy(update={"correct": False}) for p in make_paths()])
    cfg = make_config(objective="sft_single", routing__mode="all", peer__enabled=False)
    toks = {s.name: load_tokenizer(s.model) for s in cfg.students}
    with pytest.raises(DataError, match="no trainable items") as caught:
        build_data(wrong, cfg, toks)
    assert isinstance(caught.value, QRDistillError)


def test_a_checkpoint_of_other_modules_is_a_mismatch_error(tmp_path):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    folder = tmp_path / "step-1"
    folder.mkdir()
    torch.save({"other.weight": torch.zeros(1)}, folder / "trainable.pt")
    with pytest.raises(CheckpointMismatch, match="does not match this configuration") as caught:
        checkpoint.load(folder, model, optimizer, scheduler, rank=0)
    assert isinstance(caught.value, QRDistillError)
