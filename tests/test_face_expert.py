"""The face expert of face mode and its fusion with the network (fakedet.model.expert)."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fakedet import Detector
from fakedet.cli import cli
from fakedet.model import checkpoint
from fakedet.model import expert as fx
from fakedet.model import faces as faces_mod

from conftest import load_experiment, write_image

BOX = [40, 30, 120, 110]


def make_expert(path, network, weight=0.2, face_verdicts=None, seed=0, **kw):
    torch.manual_seed(seed)
    model = fx.build_model()
    # a freshly made network gives every input the same logit; small running variances make
    # its logit depend on the input, so that a crop given to the wrong face shows
    state = model.state_dict()
    for k, v in state.items():
        if k.endswith("running_var"):
            v.fill_(0.05)
    meta = fx.ExpertMeta(size=kw.get("size", 64), weight=weight, norm_expert=kw.get("norm_expert", (0.1, 0.5)),
                         norm_network=kw.get("norm_network", (-2.0, 1.5)),
                         box_map={"ratio": 0.945, "dx": 0.004, "dy": 0.048},
                         network_sha256=checkpoint.sha256(network), face_verdicts=face_verdicts,
                         whole_gate=kw.get("whole_gate"))
    fx.save(path, model.state_dict(), meta)
    return path


@pytest.fixture
def faces_by_width(monkeypatch):
    """Generated images get 0, 1 or 2 faces by their width (120, 200, 240 px)."""
    boxes = {120: [], 200: [([40, 30, 120, 110], 0.99)], 240: [([10, 10, 90, 90], 0.99), ([120, 60, 230, 150], 0.98)]}
    monkeypatch.setattr(faces_mod, "find_faces", lambda img, detector=None: [(list(b), s) for b, s in boxes[img.width]])


@pytest.fixture
def one_face(monkeypatch):
    """Every image has one face at BOX (MTCNN finds none in generated images)."""
    monkeypatch.setattr(faces_mod, "find_faces", lambda img, detector=None: [(list(BOX), 0.99)])


def test_fusion_at_weight_zero_is_the_network_and_at_one_the_expert_in_network_units():
    meta = fx.ExpertMeta(64, 0.0, (1.0, 2.0), (-3.0, 0.5), {"ratio": 1, "dx": 0, "dy": 0}, "x")
    assert fx.fuse(1.234, 99.0, meta) == pytest.approx(1.234)
    one = dataclasses.replace(meta, weight=1.0)
    # the expert one sd above its reference mean lands one network sd above the network's mean
    assert fx.fuse(5.0, 3.0, one) == pytest.approx(-3.0 + 0.5)
    half = dataclasses.replace(meta, weight=0.5)
    assert fx.fuse(0.0, 1.0, half) == pytest.approx(0.5 * 0 + 0.5 * -3.0)
    assert fx.standardised(1.0, meta) == 0.0 and fx.standardised(5.0, meta) == pytest.approx(2.0)


def test_metadata_round_trip_and_refusals():
    meta = fx.ExpertMeta(128, 0.2, (0.1, 0.5), (-2.0, 1.5), {"ratio": 0.9, "dx": 0.0, "dy": 0.05}, "ab",
                         {"fake": 0.9, "real": 0.5, "rule": "r"})
    assert fx.ExpertMeta.from_metadata(meta.to_metadata()) == meta
    with pytest.raises(fx.ExpertError):
        fx.ExpertMeta.from_metadata({})
    bad = json.loads(meta.to_metadata()["fakedet_face_expert"])
    bad["norm_expert"] = [0.0, 0.0]
    with pytest.raises(fx.ExpertError, match="out of range"):
        fx.ExpertMeta.from_metadata({"fakedet_face_expert": json.dumps(bad)})


def test_the_whole_image_gate_round_trips_and_is_checked():
    meta = fx.ExpertMeta(128, 0.7, (0.1, 0.5), (-2.0, 1.5), {"ratio": 0.9, "dx": 0.0, "dy": 0.05}, "ab",
                         whole_gate=0.99823)
    back = fx.ExpertMeta.from_metadata(meta.to_metadata())
    assert back == meta and "0.998230" in back.describe()["image_score"]
    older = dataclasses.replace(meta, whole_gate=None)  # files written before the gate
    assert "whole_gate" not in older.to_metadata()["fakedet_face_expert"]
    assert fx.ExpertMeta.from_metadata(older.to_metadata()).whole_gate is None
    assert older.describe()["image_score"] == "the maximum over the whole image and its faces"
    for value in (1.5, -0.1, "nan", "x", "0.5", True, False, [0.5]):
        bad = json.loads(meta.to_metadata()["fakedet_face_expert"])
        bad["whole_gate"] = value
        with pytest.raises(fx.ExpertError):
            fx.ExpertMeta.from_metadata({"fakedet_face_expert": json.dumps(bad)})


def test_the_whole_image_counts_in_face_mode_only_at_its_gate(tiny_weights, tmp_path, faces_by_width):
    """With a gate in the expert's file, an image with a face is scored by its faces, and by the
    whole image too only when p_whole reaches the gate; an image with no face by the whole image."""
    paths = [str(write_image(tmp_path / f"{i}.jpg", size=(w, 160), seed=i)) for i, w in enumerate((200, 240, 120))]

    def run(gate):
        # the expert alone, its faces placed far below any whole-image score
        e = make_expert(tmp_path / f"g{gate}.safetensors", tiny_weights, weight=1.0, norm_expert=(0.0, 1.0),
                        norm_network=(-8.0, 0.1), whole_gate=gate)
        return Detector.load(tiny_weights, device="cpu", faces=True, expert=e).predict(paths, workers=0)

    always, never = run(0.0), run(1.0)
    for a, n in zip(always, never):
        assert a.p_whole == pytest.approx(n.p_whole) and a.faces == n.faces
        assert a.p_fake == pytest.approx(max([a.p_whole] + [f["p_fake"] for f in a.faces]))
        faces = [f["p_fake"] for f in n.faces]
        assert n.p_fake == pytest.approx(max(faces) if faces else n.p_whole)
    # a gate just below or above one image's whole-image score decides whether it counts
    one = never[0]
    assert one.p_whole > 10 * one.faces[0]["p_fake"]  # else the gate could not show
    below, above = run(one.p_whole * 0.999)[0], run(min(1.0, one.p_whole * 1.001 + 1e-9))[0]
    assert below.p_fake == pytest.approx(max(one.p_whole, one.faces[0]["p_fake"]))
    assert above.p_fake == pytest.approx(one.faces[0]["p_fake"])
    at = run(one.p_whole)[0]  # a whole-image score equal to the gate counts
    assert at.p_fake == at.p_whole == one.p_whole


def test_with_the_whole_image_gated_real_needs_the_whole_image_below_too(tiny_weights, tmp_path, one_face):
    """docs/decisions/2026-12-05-the-real-verdict-under-the-gate.md: the faces' low score alone
    does not make an image `real` when the whole image's score is not below the threshold."""
    path = str(write_image(tmp_path / "a.jpg", size=(200, 160), seed=3))

    def run(real_below, gate=0.999999):
        e = make_expert(tmp_path / f"r{real_below}-{gate}.safetensors", tiny_weights, weight=1.0,
                        norm_expert=(0.0, 1.0), norm_network=(-8.0, 0.1), whole_gate=gate,
                        face_verdicts={"fake": 0.9999999, "real": real_below, "rule": "r"})
        return Detector.load(tiny_weights, device="cpu", faces=True, expert=e).predict([path], workers=0)[0]

    first = run(0.5)
    assert first.faces[0]["p_fake"] < 1e-3 < first.p_whole < 0.999999  # faces far below the whole image
    assert first.p_fake == pytest.approx(first.faces[0]["p_fake"])  # the gate leaves the whole image out
    assert run(first.p_whole * 0.99).label == "uncertain"  # the whole image is not below `real`
    assert run(min(first.p_whole * 1.01, 0.9999)).label == "real"
    # two verdicts (-t P): a plain threshold on p_fake, and the whole image counts from P on, so
    # that face mode calls fake whatever the whole image's -t P does
    e = make_expert(tmp_path / "t.safetensors", tiny_weights, weight=1.0, norm_expert=(0.0, 1.0),
                    norm_network=(-8.0, 0.1), whole_gate=0.999999)
    low = Detector.load(tiny_weights, device="cpu", faces=True, expert=e, threshold=first.p_whole * 0.5)
    r = low.predict([path], workers=0)[0]
    assert r.label == "fake" and r.p_fake == pytest.approx(first.p_whole)
    high = Detector.load(tiny_weights, device="cpu", faces=True, expert=e, threshold=min(first.p_whole * 1.5, 0.99999))
    r = high.predict([path], workers=0)[0]
    assert r.label == "real" and r.p_fake == pytest.approx(first.faces[0]["p_fake"])


def test_the_training_record_round_trips_and_says_what_the_expert_learnt_from():
    base = fx.ExpertMeta(128, 0.2, (0.1, 0.5), (-2.0, 1.5), {"ratio": 0.9, "dx": 0.0, "dy": 0.05}, "ab")
    assert "training" not in json.loads(base.to_metadata()["fakedet_face_expert"])  # files before it: unchanged
    assert base.trained_on() == "(not recorded in the file)"
    real_only = dataclasses.replace(base, training={"real_sets": ["utkface_real", "lfw_faceswap"],
                                                    "genuine_fakes": [], "left_out": None, "steps": 10})
    assert fx.ExpertMeta.from_metadata(real_only.to_metadata()) == real_only
    assert real_only.trained_on() == "self-blends of the real faces of utkface_real, lfw_faceswap (no genuine fake)"
    both = dataclasses.replace(real_only, training={**real_only.training, "genuine_fakes": ["ffpp_faces"],
                                                    "left_out": "FaceSwap"})
    assert fx.ExpertMeta.from_metadata(both.to_metadata()).trained_on() == (
        "self-blends of the real faces of utkface_real, lfw_faceswap and genuine fakes of ffpp_faces "
        "(without FaceSwap)")
    assert both.describe()["trained_on"] == both.trained_on()
    swaps = dataclasses.replace(real_only, training={**real_only.training, "recipe": "swap"})
    assert swaps.trained_on().startswith("pseudo swaps of the real faces of utkface_real")
    for training in ("everything", {"real_sets": [1, 2]}, {"real_sets": "abc"}, {"left_out": ["x"]},
                     {"steps": -1}, {"steps": True}, {"recipe": 3}):
        bad = json.loads(base.to_metadata()["fakedet_face_expert"])
        bad["training"] = training
        with pytest.raises(fx.ExpertError, match="malformed"):
            fx.ExpertMeta.from_metadata({"fakedet_face_expert": json.dumps(bad)})


def test_expert_square_follows_the_map_and_stays_inside():
    m = {"ratio": 0.5, "dx": 0.25, "dy": 0.0}
    assert fx.expert_square([100, 100, 200, 200], m, 1000, 1000) == (150, 125, 200, 175)
    x0, y0, x1, y1 = fx.expert_square([0, 0, 300, 300], {"ratio": 2.0, "dx": -0.5, "dy": 0}, 400, 350)
    assert (x0, y0) == (0, 0) and x1 - x0 == y1 - y0 == 350


def test_load_refuses_a_missing_or_broken_file(tmp_path):
    with pytest.raises(fx.ExpertError, match="not found"):
        fx.load(tmp_path / "none.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(fx.ExpertError):
        fx.load(tmp_path / "bad.safetensors")


def test_face_records_carry_both_scores_and_weight_zero_is_todays_score(tiny_weights, tmp_path, one_face):
    paths = [str(write_image(tmp_path / f"{i}.jpg", size=(200, 160), seed=i)) for i in range(3)]
    plain = Detector.load(tiny_weights, device="cpu", faces=True, expert=None).predict(paths, workers=0)
    w0 = make_expert(tmp_path / "w0.safetensors", tiny_weights, weight=0.0)
    zero = Detector.load(tiny_weights, device="cpu", faces=True, expert=w0).predict(paths, workers=0)
    w5 = make_expert(tmp_path / "w5.safetensors", tiny_weights, weight=0.5, norm_expert=(0.0, 0.01))
    fused = Detector.load(tiny_weights, device="cpu", faces=True, expert=w5).predict(paths, workers=2,
                                                                                     batch_size=2)
    for a, b, c in zip(plain, zero, fused):
        assert len(a.faces) == len(b.faces) == len(c.faces) == 1
        assert b.p_fake == pytest.approx(a.p_fake, abs=1e-9)
        assert b.faces[0]["p_fake"] == pytest.approx(a.faces[0]["p_fake"], abs=1e-9)
        assert c.faces[0]["p_network"] == pytest.approx(a.faces[0]["p_fake"], abs=1e-6)
        assert 0.0 <= c.faces[0]["p_expert"] <= 1.0
        assert c.p_fake == pytest.approx(max(c.p_whole, c.faces[0]["p_fake"]))
    # a tiny sd for the expert's norm: its score moves the fused one far from the network's
    assert any(abs(c.faces[0]["p_fake"] - a.faces[0]["p_fake"]) > 0.01 for a, c in zip(plain, fused))


def test_an_expert_made_for_other_weights(tiny_weights, tiny_weights_calibrated, tmp_path, one_face):
    other = make_expert(tmp_path / "other.safetensors", tiny_weights_calibrated)
    with pytest.raises(checkpoint.CheckpointError, match="other network weights"):
        Detector.load(tiny_weights, device="cpu", faces=True, expert=other)
    assert Detector.load(tiny_weights, device="cpu", faces=False, expert=other).expert is None


def test_fused_face_verdicts_replace_the_checkpoints(tiny_weights, tmp_path, one_face):
    verdicts = {"fake": 0.77, "real": 0.33, "rule": "r"}
    path = make_expert(tmp_path / "v.safetensors", tiny_weights, face_verdicts=verdicts)
    det = Detector.load(tiny_weights, device="cpu", faces=True, expert=path)
    assert det.face_cutoffs == (0.77, 0.33) and det.cutoffs == checkpoint.read_meta(tiny_weights).cutoffs(False)
    assert det.info()["face_expert"]["weight"] == 0.2
    two_way = Detector.load(tiny_weights, device="cpu", faces=True, expert=path, threshold=0.6)
    assert two_way.face_cutoffs == (0.6, 0.6)


def test_the_shipped_expert_pairs_with_the_shipped_weights():
    path = fx.default_expert_path()
    if not path.is_file():
        pytest.skip("no face expert shipped")
    _, meta = fx.load(path)
    assert meta.network_sha256 == checkpoint.sha256(checkpoint.default_weights_path())
    assert meta.face_verdicts is not None and meta.face_verdicts["real"] <= meta.face_verdicts["fake"]


def test_each_face_gets_its_own_crops_fused_score(tiny_weights, tmp_path, faces_by_width):
    """Batches mixing images with 0, 1 and 2 faces and an unreadable file: each face's fused
    score is the one computed by hand from its own crop; records are the same at any -b/-j."""
    from PIL import Image

    sizes = [(200, 160), (240, 170), (120, 90), (240, 170), (200, 160)]
    paths = [str(write_image(tmp_path / f"{i}.png", "PNG", size=s, seed=i)) for i, s in enumerate(sizes)]
    (tmp_path / "broken.jpg").write_bytes(b"garbage")
    paths.insert(2, str(tmp_path / "broken.jpg"))
    path = make_expert(tmp_path / "e.safetensors", tiny_weights, weight=0.5, norm_expert=(0.0, 1.0))
    det = Detector.load(tiny_weights, device="cpu", faces=True, expert=path)
    model, meta = fx.load(path)
    plain = Detector.load(tiny_weights, device="cpu", faces=True, expert=None).predict(paths, workers=0)
    runs = [det.predict(paths, workers=j, batch_size=b) for j, b in ((0, 1), (0, 7), (2, 3))]
    for recs in runs[1:]:
        assert [r.to_dict() for r in recs] == [r.to_dict() for r in runs[0]]
    recs = runs[0]
    assert recs[2].error and recs[2].faces is None
    assert [len(r.faces) for i, r in enumerate(recs) if i != 2] == [1, 2, 0, 2, 1]
    for p, r, q in zip(paths, recs, plain):
        if r.error:
            continue
        img = Image.open(p).convert("RGB")
        for face, qf in zip(r.faces, q.faces):
            # through the detector's runner, as the scan: this random expert's logit is so
            # sensitive that another thread count or batch moves it by more than the tolerance
            le = fx.expert_logits(model, fx.expert_crop(img, face["box"], meta.box_map, meta.size)[None],
                                  det._cpu)[0]
            ln = det.temperature * float(np.log(qf["p_fake"] / (1 - qf["p_fake"])))
            want = 1 / (1 + np.exp(-fx.fuse(ln, le, meta) / det.temperature))
            assert face["p_fake"] == pytest.approx(want, abs=1e-5)
            assert face["p_network"] == pytest.approx(qf["p_fake"], abs=1e-9)
        assert r.p_fake == pytest.approx(max([r.p_whole] + [f["p_fake"] for f in r.faces]))


def test_auto_skips_an_expert_without_verdicts(tiny_weights, tmp_path, monkeypatch):
    path = make_expert(tmp_path / "e.safetensors", tiny_weights)
    monkeypatch.setattr(fx, "default_expert_path", lambda: path)
    assert Detector.load(tiny_weights, device="cpu", faces=True).expert is None
    assert Detector.load(tiny_weights, device="cpu", faces=True, expert=True).expert is None
    with pytest.warns(UserWarning, match="no verdict thresholds of its own"):  # labels by the network's
        assert Detector.load(tiny_weights, device="cpu", faces=True, expert=path).expert is not None


@pytest.mark.parametrize("verdicts", [{"fake": 0.1, "real": 0.9}, {"fake": float("nan"), "real": 0.1},
                                      {"fake": 1.5, "real": 0.1}, {"fake": True, "real": 0.0},
                                      {"fake": 0.9}, "0.9", [0.9, 0.1]])
def test_malformed_face_verdicts_are_refused(verdicts):
    meta = fx.ExpertMeta(128, 0.2, (0.1, 0.5), (-2.0, 1.5), {"ratio": 0.9, "dx": 0.0, "dy": 0.05}, "ab",
                         {"fake": 0.9, "real": 0.5, "rule": "r"})
    bad = json.loads(meta.to_metadata()["fakedet_face_expert"])
    bad["face_verdicts"] = verdicts
    with pytest.raises(fx.ExpertError, match="face_verdicts"):
        fx.ExpertMeta.from_metadata({"fakedet_face_expert": json.dumps(bad)})


def test_scan_faces_jsonl_lists_both_scores(tiny_weights, tmp_path, one_face, monkeypatch):
    path = make_expert(tmp_path / "e.safetensors", tiny_weights, face_verdicts={"fake": 0.9, "real": 0.1, "rule": "r"})
    monkeypatch.setattr(fx, "default_expert_path", lambda: path)
    img = write_image(tmp_path / "in" / "a.jpg", size=(200, 160))
    r = CliRunner().invoke(cli, ["scan", "--faces", "-f", "jsonl", "-w", str(tiny_weights), "-j", "0", str(img)])
    assert r.exit_code == 0, r.output
    face = json.loads(r.stdout)["faces"][0]
    assert set(face) == {"box", "p_fake", "confidence", "p_network", "p_expert"}
    assert "faces scored with the face expert" in r.stderr
    assert Detector.load(tiny_weights, device="cpu", faces=True, expert=True).expert is not None
    assert Detector.load(tiny_weights, device="cpu", faces=True, expert=False).expert is None
    r = CliRunner().invoke(cli, ["scan", "--faces", "--no-face-expert", "-f", "jsonl", "-w", str(tiny_weights),
                                 "-j", "0", str(img)])
    assert r.exit_code == 0, r.output
    assert set(json.loads(r.stdout)["faces"][0]) == {"box", "p_fake", "confidence"}
    assert "faces scored by the network alone" in r.stderr


def test_expert_crop_matches_training_resizes(tmp_path):
    from PIL import Image

    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    crop = fx.expert_crop(img, [100, 50, 200, 150], {"ratio": 1.0, "dx": 0, "dy": 0}, 128)
    ref = img.crop((100, 50, 200, 150)).resize((256, 256), Image.Resampling.BICUBIC).resize(
        (128, 128), Image.Resampling.BILINEAR)
    assert crop.shape == (128, 128, 3) and np.array_equal(crop, np.asarray(ref))


@pytest.fixture(scope="module")
def fe():
    """experiments/face_expert.py, the script, loaded as a module."""
    return load_experiment("face_expert")


def _evaluate_json(path, aucs, shares, weights="w.safetensors"):
    sets = {name: {"n_real": 100, "auc": {"fused": a}, "fake_share_real": {"fused": shares.get(name, 0.0)}}
            for name, a in aucs.items()}
    sets["cifake_sd14"] = {"n_real": 100, "fake_share_real": {"fused": shares.get("cifake_sd14", 0.0)}}
    path.write_text(json.dumps({"split": "val", "weights": weights, "sets": sets}))
    return str(path)


def test_compare_reads_rules_one_and_two(tmp_path, fe):
    cur = _evaluate_json(tmp_path / "cur.json", {"ffpp_faces": 0.78, "dfdc_faceswap": 0.82, "lfw_faceswap": 0.92}, {})
    good = _evaluate_json(tmp_path / "good.json", {"ffpp_faces": 0.81, "dfdc_faceswap": 0.83, "lfw_faceswap": 0.92},
                          {"cifake_sd14": 0.03})  # at the bound: max(0, 2 %) + 1 of 100
    out = tmp_path / "r.json"
    fe.main(["compare", good, cur, "--json", str(out)])
    r = json.loads(out.read_text())
    assert r["mean_difference"] == pytest.approx(0.04 / 3) and r["rule_1"] and r["rule_2"]
    small = _evaluate_json(tmp_path / "small.json", {"ffpp_faces": 0.80, "dfdc_faceswap": 0.80, "lfw_faceswap": 0.95},
                           {"cifake_sd14": 0.031})
    fe.main(["compare", small, cur, "--json", str(out)])
    r = json.loads(out.read_text())
    assert not r["rule_1"] and not r["rule_2"]  # dfdc fell by 0.02; cifake past its bound
    other = _evaluate_json(tmp_path / "other.json", {"ffpp_faces": 0.9, "dfdc_faceswap": 0.9, "lfw_faceswap": 0.9},
                           {}, weights="another.safetensors")
    with pytest.raises(SystemExit, match="different weights"):
        fe.main(["compare", other, cur])


def _weigh_json(path, method, benefit, reference=0.7, allowed=None, weights="shipped", cost_expert="g.safetensors"):
    grid = [round(0.1 * k, 1) for k in range(11)]
    path.write_text(json.dumps({"method": method, "weights": weights, "cost_expert": cost_expert,
                                "benefit": {str(w): b for w, b in zip(grid, benefit)}, "reference": reference,
                                "allowed": grid if allowed is None else allowed}))
    return str(path)


def test_pool_takes_the_best_mean_and_changes_only_past_the_margin(tmp_path, fe):
    rise = [0.70 + 0.01 * k for k in range(11)]  # best at 1.0
    fall = [0.80 - 0.02 * k for k in range(11)]  # best at 0
    a = _weigh_json(tmp_path / "a.json", "FaceSwap", rise)
    b = _weigh_json(tmp_path / "b.json", "Face2Face", fall)
    out = tmp_path / "p.json"
    fe.main(["pool", a, b, "--current", "0.7", "--json", str(out)])
    r = json.loads(out.read_text())
    # means: 0.75 - 0.005 k, best at 0 (0.75) against 0.7's 0.715: a change
    assert r["chosen_weight"] == 0.0 and r["change"] and r["mean_benefit"]["0.7"] == pytest.approx(0.715)
    flat = _weigh_json(tmp_path / "c.json", "Face2Face", [0.8 - 0.001 * k for k in range(11)])
    fe.main(["pool", _weigh_json(tmp_path / "d.json", "FaceSwap", [0.8] * 11), flat, "--current", "0.7",
             "--json", str(out)])
    r = json.loads(out.read_text())
    assert r["chosen_weight"] == 0.0 and not r["change"]  # 0.0035 better: inside the margin
    limited = _weigh_json(tmp_path / "e.json", "NeuralTextures", fall, allowed=[0.5, 0.6, 0.7])
    fe.main(["pool", a, limited, "--current", "0.7", "--json", str(out)])
    assert json.loads(out.read_text())["chosen_weight"] == 0.5  # only weights every JSON allows
    # a weigh run without --reference-expert (reference null) pools the same; its reference prints as –
    no_ref = _weigh_json(tmp_path / "g.json", "Face2Face", fall, reference=None)
    fe.main(["pool", a, no_ref, "--current", "0.7", "--json", str(out)])
    r = json.loads(out.read_text())
    assert r["chosen_weight"] == 0.0 and r["reference"]["Face2Face"] is None
    with pytest.raises(SystemExit, match="one method twice"):
        fe.main(["pool", a, a, "--current", "0.7"])
    with pytest.raises(SystemExit, match="different cost_expert"):
        fe.main(["pool", a, _weigh_json(tmp_path / "f.json", "Deepfakes", rise, cost_expert="x"), "--current", "0.7"])


def test_pool_sets_reads_held_out_sets_by_the_margin(tmp_path, fe):
    grid = [round(0.1 * k, 1) for k in range(11)]

    def weigh_set(name, benefit, split="val"):
        path = tmp_path / f"{name}-{split}.json"
        path.write_text(json.dumps({"set": name, "split": split,
                                    "benefit": {str(w): b for w, b in zip(grid, benefit)}}))
        return str(path)

    rise = weigh_set("lfw_faceswap", [0.60 + 0.02 * k for k in range(11)])  # best at 1.0
    flat = weigh_set("ffpp_faces", [0.70] * 11)
    out = tmp_path / "p.json"
    fe.main(["pool-sets", rise, flat, "--current", "0.7", "--json", str(out)])
    r = json.loads(out.read_text())
    # means 0.65 + 0.01 k: best at 1.0, 0.03 over 0.7's
    assert r["chosen_weight"] == 1.0 and r["rule_1"] and r["mean_benefit"]["0.7"] == pytest.approx(0.72)
    small = weigh_set("dfdc_faceswap", [0.70 + 0.001 * k for k in range(11)])
    fe.main(["pool-sets", small, flat, "--current", "0.7", "--json", str(out)])
    r = json.loads(out.read_text())
    assert r["chosen_weight"] == 1.0 and not r["rule_1"]  # 0.0015 better: inside the margin
    with pytest.raises(SystemExit, match="one set twice"):
        fe.main(["pool-sets", flat, flat, "--current", "0.7"])
    with pytest.raises(SystemExit, match="different splits"):
        fe.main(["pool-sets", rise, weigh_set("ffpp_faces", [0.7] * 11, split="test"), "--current", "0.7"])


def test_export_reads_the_box_map_from_the_run_a_json_or_an_exported_expert(tmp_path, tiny_weights, fe):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(SystemExit, match="no box map"):
        fe.read_box_map(run)
    (run / "mtcnn_map.json").write_text(json.dumps({"ratio": 0.9, "dx": 0.01, "dy": 0.05, "n": 12}))
    assert fe.read_box_map(run) == {"ratio": 0.9, "dx": 0.01, "dy": 0.05}
    expert = make_expert(tmp_path / "e.safetensors", tiny_weights)
    assert fe.read_box_map(run, str(expert)) == {"ratio": 0.945, "dx": 0.004, "dy": 0.048}
    (tmp_path / "bad.json").write_text(json.dumps({"ratio": 0.9}))
    with pytest.raises(SystemExit, match="not a box map"):
        fe.read_box_map(run, str(tmp_path / "bad.json"))


def test_an_expert_continued_from_another_counts_both_runs_steps(fe):
    state = {"step": 2000, "train_sets": ["a"], "genuine": ["b"], "leave_out": None, "recipe": "self"}
    assert fe.training_record(state) == {"recipe": "self", "real_sets": ["a"], "genuine_fakes": ["b"],
                                         "left_out": None, "steps": 2000}
    continued = fe.training_record(dict(state, init="runs/g", init_steps=2000))
    assert continued["steps"] == 4000 and continued["continued_steps"] == 2000
    assert continued["continued_from"] == "runs/g (2000 steps)"
    fx._check_training(continued)  # a record the expert file accepts
    meta = fx.ExpertMeta(128, 0.7, (0.0, 1.0), (0.0, 1.0), {"ratio": 0.9, "dx": 0.0, "dy": 0.0}, "ab",
                         training=continued)
    assert meta.trained_on().endswith("; 4000 steps, the last 2000 continued from runs/g (2000 steps)")
    unknown = fe.training_record(dict(state, init="runs/g"))  # the first run's steps not recorded
    assert unknown["steps"] == 2000 and "continued_steps" not in unknown
    assert unknown["continued_from"] == "runs/g (its steps not recorded)"


def test_mirror_records_the_tools_logits_and_the_mirrors(tiny_weights, tmp_path, one_face, fe):
    """face_expert.py mirror: its unmirrored logits are the tool's own (its candidate 0 rebuilds
    the tool's p_fake), and its mirrored expert logits are the expert's on the mirrored square."""
    from PIL import Image

    paths = [str(write_image(tmp_path / f"{i}.jpg", size=(200, 160), seed=i)) for i in range(3)]
    f = make_expert(tmp_path / "e.safetensors", tiny_weights, weight=0.7, norm_expert=(0.0, 0.05))
    det = Detector.load(tiny_weights, device="cpu", faces=True, expert=f, workers=0)
    fe.mirror_check(det, paths)  # exits unless candidate 0 rebuilt = p_fake
    rec = fe.mirrored_logits(det, paths)
    model, meta = det.expert[:2]
    for p in paths:
        crop = fx.expert_crop(Image.open(p).convert("RGB"), BOX, meta.box_map, meta.size)
        want = fx.expert_logits(model, np.stack([crop, crop[:, ::-1]]), det._cpu)
        assert rec[p]["le"][0] == pytest.approx(want[0], abs=1e-5)
        assert rec[p]["le_m"][0] == pytest.approx(want[1], abs=1e-5)
        assert len(rec[p]["ln"]) == len(rec[p]["ln_m"]) == 2  # the whole image, then the face
    assert any(abs(rec[p]["le_m"][0] - rec[p]["le"][0]) > 1e-4 for p in paths)  # a mirror is another input
    nrm = (meta.norm_network, meta.norm_expert)
    zero = [fe.candidate_score(rec[p], "0", nrm) for p in paths]
    both = [fe.candidate_score(rec[p], "EN", nrm) for p in paths]
    assert zero != both


def test_explain_scores_and_labels_faces_as_a_scan_does(tiny_weights, tmp_path, one_face):
    """explain with a Detector holding the face expert: each face's score, p_fake and the verdict
    are scan --faces's (fused, the whole image gated); without the expert, the network's own."""
    from fakedet.inference.explain import explain

    path = str(write_image(tmp_path / "a.jpg", size=(200, 160), seed=5))
    e = make_expert(tmp_path / "v.safetensors", tiny_weights, weight=0.5, norm_expert=(0.0, 0.01),
                    face_verdicts={"fake": 0.9, "real": 0.2, "rule": "r"}, whole_gate=0.95)
    for expert in (e, None):
        det = Detector.load(tiny_weights, device="cpu", faces=True, expert=expert, workers=0)
        (_, ex), rec = explain(det, path, grid=2), det.predict([path])[0]
        assert ex.faces and ex.face_expert == (expert is not None)
        assert ex.faces[0].p_fake == pytest.approx(rec.faces[0]["p_fake"], abs=1e-5)
        assert ex.p_fake == pytest.approx(rec.p_fake, abs=1e-5) and ex.label == rec.label
        assert ex.cutoffs == det.face_cutoffs


def test_no_face_expert_without_faces_is_a_warning(tiny_weights, tmp_path):
    path = str(write_image(tmp_path / "a.jpg", size=(200, 160), seed=1))
    runner = CliRunner()
    r = runner.invoke(cli, ["scan", "-w", str(tiny_weights), "-j", "0", "--no-face-expert", path])
    assert r.exit_code == 0 and "--no-face-expert has no effect without --faces" in r.stderr
    r = runner.invoke(cli, ["scan", "-w", str(tiny_weights), "-j", "0", path])
    assert r.exit_code == 0 and "no-face-expert" not in r.stderr


def test_the_api_says_which_gate_is_in_use_and_scores_a_faceless_image(tiny_weights, tmp_path):
    e = make_expert(tmp_path / "g.safetensors", tiny_weights, whole_gate=0.99,
                    face_verdicts={"fake": 0.99, "real": 0.1, "rule": "r"})
    det = Detector.load(tiny_weights, device="cpu", faces=True, expert=e)
    words = det.info()["face_expert"]["image_score"]
    assert "0.990000" in words and "`real`" in words
    two = Detector.load(tiny_weights, device="cpu", faces=True, expert=e, threshold=0.5)
    words = two.info()["face_expert"]["image_score"]
    assert "0.500000" in words and "`real`" not in words  # -t: the gate in use, two verdicts
    assert det.image_score([0.3]) == 0.3 and det.image_score([0.3, 0.2]) == 0.2  # no face: the whole image


def test_gate_writes_the_whole_image_gate_and_drops_the_verdicts(tiny_weights, tmp_path, fe):
    e = make_expert(tmp_path / "e.safetensors", tiny_weights, face_verdicts={"fake": 0.9, "real": 0.1, "rule": "r"})
    out = tmp_path / "g.safetensors"
    with pytest.raises(SystemExit, match="no three-way whole-image verdicts"):  # the tiny network is two-way
        fe.main(["gate", "--expert", str(e), "--weights", str(tiny_weights), "--out", str(out)])
    fe.main(["gate", "--expert", str(e), "--weights", str(tiny_weights), "--out", str(out), "--at", "0.97"])
    meta = fx.read_meta(out)
    assert meta.whole_gate == 0.97 and meta.face_verdicts is None and meta.weight == fx.read_meta(e).weight
    with pytest.raises(SystemExit, match="was not made for"):
        other = make_expert(tmp_path / "o.safetensors", tiny_weights)
        fe.main(["gate", "--expert", str(other), "--weights", str(e), "--out", str(out), "--at", "0.9"])


def test_the_rebuilt_gated_score_is_the_tools_and_a_wrong_gate_is_caught(tiny_weights, tmp_path, faces_by_width, fe):
    """face_expert.py's gated rebuild (read by every gate record and ``lomo --pair``) gives the
    tool's own p_fake, on images with no face, one and two; rebuilt at another gate it does not."""
    paths = [str(write_image(tmp_path / f"{i}.png", size=(w, 160), seed=i)) for i, w in enumerate((120, 200, 240) * 2)]
    probe = Detector.load(tiny_weights, device="cpu", workers=0).predict(paths)
    gate = float(np.median([r.p_fake for r in probe]))  # the whole image counts for some, not all
    # faces scored below every whole image: which whole images count decides p_fake
    f = make_expert(tmp_path / "e.safetensors", tiny_weights, weight=0.7, norm_expert=(0.0, 50.0), whole_gate=gate)
    det = Detector.load(tiny_weights, device="cpu", faces=True, expert=f, workers=0)
    recs = det.predict(paths)
    assert {len(r.faces) for r in recs} == {0, 1, 2}
    assert max(f["p_fake"] for r in recs for f in r.faces) < min(r.p_whole for r in recs)
    assert any(r.faces and r.p_whole < gate for r in recs) and any(r.faces and r.p_whole >= gate for r in recs)
    fe.gated_check(det, recs, gate)
    with pytest.raises(SystemExit, match="differs"):
        fe.gated_check(det, recs, 0.0)  # the whole image always counting is another score


def test_the_face_mode_summary_says_real_needs_the_whole_image_too(tiny_weights, tmp_path, one_face, monkeypatch):
    f = make_expert(tmp_path / "e.safetensors", tiny_weights, weight=0.7, whole_gate=0.9,
                    face_verdicts={"fake": 0.99, "real": 0.05, "rule": "r"})
    monkeypatch.setattr(fx, "default_expert_path", lambda: f)
    img = write_image(tmp_path / "a.jpg", size=(200, 160))
    det = Detector.load(tiny_weights, device="cpu", faces=True, expert=f, workers=0)
    assert det.whole_gate == 0.9 and Detector.load(tiny_weights, device="cpu", workers=0).whole_gate is None
    r = CliRunner().invoke(cli, ["scan", "--faces", "-w", str(tiny_weights), "-j", "0", str(img)])
    assert r.exit_code == 0, r.output
    assert "real needs every score, the whole image's too, below 0.050000" in r.stderr, r.stderr
    r = CliRunner().invoke(cli, ["scan", "--faces", "--no-face-expert", "-w", str(tiny_weights), "-j", "0", str(img)])
    assert "whole image's too" not in r.stderr


def test_an_expert_logit_does_not_depend_on_the_crops_beside_it(tiny_weights, tmp_path):
    """A face's expert logit is the same whichever faces share its sub-batch (scan -b must not
    change a record): the crops go to the model in one memory layout whatever their number."""
    f = make_expert(tmp_path / "e.safetensors", tiny_weights, weight=0.7, size=128)
    det = Detector.load(tiny_weights, device="cpu", faces=True, expert=f, workers=0)
    model = det.expert[0]
    crops = np.random.default_rng(0).integers(0, 256, (8, 128, 128, 3), np.uint8)
    together = fx.expert_logits(model, crops, det._cpu)
    alone = np.concatenate([fx.expert_logits(model, c[None], det._cpu) for c in crops])
    assert np.array_equal(together, alone)


def test_an_expert_whose_tensors_are_of_another_dtype_is_refused(tiny_weights, tmp_path):
    """int tensors were cast without a word and moved every face's fused score."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = make_expert(tmp_path / "e.safetensors", tiny_weights)
    with safe_open(str(path), "pt") as fh:
        md = fh.metadata()
    state = {k: (v.int() if v.is_floating_point() else v) for k, v in load_file(str(path)).items()}
    save_file(state, str(path), metadata=md)
    with pytest.raises(fx.ExpertError, match="wrong dtype"):
        fx.load(path)


@pytest.mark.parametrize("key, value", [("size", 2048), ("size", 128.9), ("size", "128"), ("weight", 10 ** 400),
                                        ("norm_expert", [0.0, 1e-310])])
def test_expert_metadata_too_large_or_too_small_is_refused(tiny_weights, tmp_path, key, value):
    """size 2048 took 9 GB and ended in a traceback; a 400-digit weight raised OverflowError; an sd
    of 1e-310 labelled every face fake."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = make_expert(tmp_path / "e.safetensors", tiny_weights)
    with safe_open(str(path), "pt") as fh:
        d = json.loads(fh.metadata()["fakedet_face_expert"])
    d[key] = value
    save_file(load_file(str(path)), str(path), metadata={"fakedet_face_expert": json.dumps(d)})
    with pytest.raises(fx.ExpertError, match="malformed|out of range"):
        fx.read_meta(path)
