"""``esrgan prepare degrade --options FILE --preview DIR``: the training pairs exactly as the trainer draws them, on a
report page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from esrgan.commands import prepare
from esrgan.data.image import imread, imwrite
from esrgan.options import load_options, save_options
from esrgan.training.preview import training_pairs

FIXTURES = Path(__file__).parent / "fixtures" / "realesrgan"


@pytest.fixture(scope="module")
def options_file(tmp_path_factory) -> Path:
    from skimage import data

    root = tmp_path_factory.mktemp("preview")
    img = data.astronaut()
    for i, (y, x) in enumerate([(0, 0), (100, 300), (300, 100), (380, 380)]):
        imwrite(root / "HR" / f"{i:03d}.png", np.ascontiguousarray(img[y : y + 120, x : x + 120]))
    opt = load_options(FIXTURES / "train_realesrnet_x4plus.yml", [
        f"datasets.train.dataroot_gt={root / 'HR'}", "datasets.train.meta_info=null",
        "datasets.train.crop_pad_size=96", "datasets.train.gt_size=32", "gt_size=32", "queue_size=4",
        "datasets.train.batch_size_per_gpu=2", "datasets.train.num_worker_per_gpu=0",
        "network_g.num_feat=8", "network_g.num_block=1", "network_g.num_grow_ch=8", "path.pretrain_network_g=null",
        f"path.experiments_root={root / 'exp'}", "num_gpu=0", "manual_seed=7",
    ])  # fmt: skip
    return save_options(opt, root / "train.yml")


def test_preview_pairs_are_what_the_trainer_trains_on(options_file, tmp_path, one_thread):
    from esrgan.training.trainer import Trainer

    opt = load_options(options_file)
    pairs = training_pairs(opt, 3)
    assert [(p.iteration, p.index) for p in pairs] == [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]
    trainer = Trainer(opt, interactive=False)
    try:
        seen = []
        for step, batches in enumerate(trainer.stream, start=1):
            for batch in batches:
                lq, gt = trainer.model.prepare_batch(batch)
                seen += [(lq[i], gt[i]) for i in range(lq.shape[0])]
            if step == 3:
                break
    finally:
        trainer.release_lock()
    assert len(seen) == len(pairs)
    for p, (lq, gt) in zip(pairs, seen):
        assert torch.equal(p.lq, lq) and torch.equal(p.gt, gt)
        assert p.lq.shape[-1] * 4 == p.gt.shape[-1] == 32
    assert not torch.equal(pairs[0].lq, pairs[1].lq)  # different images, different draws


def test_prepare_degrade_preview_writes_the_page(options_file, tmp_path, capsys):
    out = tmp_path / "gallery"
    assert prepare.main(["degrade", "--options", str(options_file), "--preview", str(out), "--steps", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.html")
    html = (out / "report.html").read_text(encoding="utf-8")
    data = json.loads(html.split('id="report-data">')[1].split("</script>")[0])
    assert data["kind"] == "degradations" and data["scale"] == 4 and len(data["steps"]) == 2
    first = data["steps"][0]["pairs"][0]
    lq, big, gt = (imread(out / first[k]) for k in ("lq", "lq_big", "gt"))
    assert lq.shape == (8, 8, 3) and big.shape == gt.shape == (32, 32, 3)
    assert np.array_equal(big[::4, ::4], lq)
    pairs = training_pairs(load_options(options_file), 1)
    from esrgan.data.image import tensor2img

    assert np.array_equal(lq, tensor2img(pairs[0].lq)) and np.array_equal(gt, tensor2img(pairs[0].gt))
    assert "manual_seed 7" in data["description"] and "esrgan prepare degrade" in data["provenance"]["command"]
    # a second run into the same folder needs --overwrite
    assert prepare.main(["degrade", "--options", str(options_file), "--preview", str(out)]) == 1
    assert "pass --overwrite" in capsys.readouterr().err
