"""The coding-cost expert study (experiments/coding_cost.py): the coder must be causal and its bits honest."""


import numpy as np
import pytest
import torch

from conftest import load_experiment

cc = load_experiment("coding_cost")


@pytest.mark.parametrize("row,col", [(0, 0), (5, 9), (8, 8), (15, 15)])
def test_a_pixel_changes_no_prediction_at_or_before_it(row, col):
    torch.manual_seed(0)
    coder = cc.Coder(width=8, blocks=3)
    x = torch.randint(0, 256, (1, 1, 16, 16)).float()
    y = x.clone()
    y[0, 0, row, col] = 255 - y[0, 0, row, col]
    changed = (coder(x) - coder(y)).abs().sum(1)[0] > 1e-6
    first = row * 16 + col
    order = torch.arange(256).reshape(16, 16)
    assert not changed[order <= first].any()
    if first < 255:
        assert changed[order > first].any()  # the coder does look at what came before


def test_a_uniform_coder_costs_eight_bits_and_d_is_zero():
    coder = cc.Coder(width=8, blocks=2)
    with torch.no_grad():
        for p in coder.out[-1].parameters():
            p.zero_()
    luma = np.random.default_rng(0).integers(0, 256, (40, 50), dtype=np.uint8)
    cost, entropy = cc.cost_and_entropy(coder, torch.from_numpy(luma)[None, None])
    assert torch.allclose(cost, torch.full_like(cost, 8.0), atol=1e-4)
    assert torch.allclose(entropy, torch.full_like(entropy, 8.0), atol=1e-4)
    stats = cc.image_stats(coder, luma)
    assert abs(stats["d"]) < 1e-4 and abs(stats["half_d"]) < 1e-4 and abs(stats["nll"] - 8) < 1e-4


def test_a_confident_coder_is_cheap_where_it_is_right_and_costly_where_wrong():
    coder = cc.Coder(width=8, blocks=2)
    with torch.no_grad():
        for p in coder.out[-1].parameters():
            p.zero_()
        coder.out[-1].bias[100] = 20.0  # predicts 100 everywhere, almost surely
    right = torch.full((1, 1, 8, 8), 100)
    wrong = torch.full((1, 1, 8, 8), 7)
    (cost_r, ent), (cost_w, _) = cc.cost_and_entropy(coder, right), cc.cost_and_entropy(coder, wrong)
    assert cost_r.max() < 0.01 and ent.max() < 0.01 and cost_w.min() > 20


def test_downscale_and_crop_keep_native_pixels():
    a = np.arange(36, dtype=np.uint8).reshape(6, 6)
    assert cc.downscale2(a).tolist() == [[4, 6, 8], [16, 18, 20], [28, 30, 32]]
    assert cc.centre_crop(a, 4).tolist() == a[1:5, 1:5].tolist()
    assert cc.centre_crop(a, 10).shape == (6, 6)


def _tiny_data(root):
    """Every set the study reads, a few small noisy images each, in the data's own layout."""
    from PIL import Image
    rng = np.random.default_rng(0)
    classes = {"sd15_finetunes": (1,), "imagenet_real_photos": (0,), "utkface_real": (0,),
               "unsplash_portraits": (0,)}
    for name in cc.TRAIN_SETS + ["stylegan2_faces", "sd15_finetunes", "unsplash_portraits"]:
        rows = ["file,label,group,split"]
        for label in classes.get(name, (0, 1)):
            folder = root / name / ("fake" if label else "real")
            folder.mkdir(parents=True, exist_ok=True)
            for k, split in enumerate(["train", "train", "val", "val", "test"]):
                arr = rng.integers(0, 256, (36 + 4 * k, 40, 3), dtype=np.uint8)
                Image.fromarray(arr).save(folder / f"{k}.jpg", quality=90)
                rows.append(f"{folder.name}/{k}.jpg,{label},g{k},{split}")
        (root / name / "manifest.csv").write_text("\n".join(rows) + "\n")


def test_train_then_eval_end_to_end(tmp_path, capsys):
    import json
    _tiny_data(tmp_path / "data")
    coder = tmp_path / "coder.safetensors"
    cc.main(["train", "--out", str(coder), "--steps", "2", "--batch", "4", "--data", str(tmp_path / "data")])
    out, rows = tmp_path / "eval.json", tmp_path / "rows.jsonl"
    cc.main(["eval", "--coder", str(coder), "--json", str(out), "--rows", str(rows),
             "--data", str(tmp_path / "data")])
    assert torch.is_grad_enabled()  # the evaluation leaves the process as it found it
    report = json.loads(out.read_text())
    for sign in ("-D", "+D"):
        part = report[f"score {sign}"]
        assert set(part["unseen real sources above"]) == {"stylegan2_faces reals", "unsplash_portraits", "both"}
        assert all(0 <= v <= 1 for v in part["AUC"].values())
    # the two directions rank every set in opposite orders
    for key, a in report["score -D"]["AUC"].items():
        assert abs(a + report["score +D"]["AUC"][key] - 1) < 1e-6
    lines = [json.loads(line) for line in rows.read_text().splitlines()]
    assert {line["jpeg_quality"] for line in lines} == {None, 50}
    assert len({line["path"] for line in lines}) == len([ln for ln in lines if ln["jpeg_quality"] is None])
    capsys.readouterr()  # what the evaluation printed
    cc.main(["summary", "--rows", str(rows)])
    summary = json.loads(capsys.readouterr().out)
    assert "stylegan2_faces real" in summary["mean by set and class"]
    assert "sd15_finetunes fake" in summary["mean by set and class"]
    differences = summary["AUC of the difference"]["d - half_d"]
    assert set(differences) >= {"cifake_sd14", "sd15_finetunes vs unsplash_portraits"}
