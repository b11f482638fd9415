"""Training recipes (fakedet.training.recipe): the new files resolve to what the old ones trained on;
unknown keys, --set and --seed."""

import json
from pathlib import Path

import pytest

from fakedet.data import sets
from fakedet.training import recipe as rc

REPO = Path(__file__).resolve().parents[1]
LATER_AUGMENT = {"p_frame"}
LATER_KEYS = {"train.face_crop_sets", "train.face_crop_boxes", "train.texture_only_sets",
              "data.exclude_groups", "train.interpolate_with", "train.interpolate_weight",
              "train.sbi_set_weights"}  # likewise, off when empty
OLD = json.loads((REPO / "tests" / "data" / "old_recipes.json").read_text())["entries"]


def sections(d: dict) -> tuple:
    """A resolved recipe's data, train, calibration and model sections: what two runs that differ
    only in the keys a test has popped must share."""
    return d["data"], d["train"], d["calibration"], d["model"]


def settings(r: rc.Recipe) -> dict:
    """What the trainer reads from a resolved recipe, keyed as in tests/data/old_recipes.json."""
    d = r.to_dict()
    flat = {"model": d["model"], "data.calibration_sets": r.data.calibration}
    for section in ("data", "calibration", "train"):
        for k, v in d[section].items():
            if k == "augment":
                # keys added after the reorganisation, off by default (their draws are skipped
                # when off, tests/test_training.py), are not in the old snapshot
                flat.update({f"train.augment.{a}": x for a, x in v.items()
                             if not (a in LATER_AUGMENT and x == 0)})
            elif k != "calibration_sets" and not (f"{section}.{k}" in LATER_KEYS and v in ([], None, {})) \
                    and not (f"{section}.{k}" == "train.real_share" and v == 0.5):  # later, 0.5 before
                flat[f"{section}.{k}"] = v
    return flat


@pytest.mark.parametrize("old", OLD, ids=[f"{e['old']}->{e['new_config']}{'+seed' if e['seed'] else ''}"
                                          for e in OLD])
def test_every_old_recipe_resolves_to_the_same_training_settings(old):
    r = rc.resolve(REPO / old["new_config"], seed=old["seed"])
    assert settings(r) == old["settings"]


# Recipes written after the reorganisation, each checked by a test of its own below.
NEW = {"configs/trust.json", "configs/trust/frame.json", "configs/trust/without_ffpp_unsplash.json",
       "configs/trust/without_ffpp_unsplash_frame.json", "configs/trust/facecrop.json",
       "configs/trust/without_ffpp_unsplash_facecrop.json", "configs/trust/fresh_without_ffpp_unsplash.json",
       "configs/trust/fresh_without_ffpp_unsplash_facecrop.json",
       "configs/trust/fresh_without_ffpp_unsplash_stylegan2.json",
       "configs/trust/fresh_without_ffpp_unsplash_sd15.json",
       "configs/trust/fresh_without_ffpp_unsplash_sd15texture.json",
       "configs/trust/h_sd15texture_4000.json", "configs/trust/h1_without_sd15_4000.json",
       "configs/trust/h2_continue_without_sd15.json", "configs/trust/h3_continue_with_ffpp.json",
       "configs/trust/h4_longer.json", "configs/trust/h4w_interpolated.json", "configs/trust/h3n_without_sbi.json",
       "configs/trust/h3s_more_sbi.json", "configs/trust/lomo_deepfakes_sbi30.json",
       "configs/trust/s2_soup_h3s_h4.json", "configs/trust/s3_soup_h3_h3s_h4.json",
       "configs/trust/h3u_with_unsplash.json", "configs/trust/h3b_with_unsplash_blended.json",
       "configs/trust/h3g_more_sbi_same_genuine.json",
       "configs/trust/h3x2_soup.json", "configs/trust/h3x3_soup.json",
       "configs/trust/h5_continue_without_sd15_ever.json", "configs/trust/h6_h5_recipe_second_draw.json",
       *(f"configs/trust/lomo_{m.lower()}.json" for m in ("Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures")),
       *(f"configs/trust/lomo_h6_{m.lower()}.json" for m in ("Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures")),
       *(f"configs/loso_real/without_{s}.json" for s in ("dfdc_faceswap", "lfw_faceswap", "cifake_sd14",
                                                          "stylegan2_faces", "imagenet_real_photos", "utkface_real",
                                                          "ffpp_faces")),
       *(f"configs/lomo_short/without_{m.lower()}.json"
         for m in ("Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures"))}


def test_every_recipe_file_is_covered_and_valid():
    covered = {e["new_config"] for e in OLD} | NEW
    for path in sorted((REPO / "configs").rglob("*.json")):
        rel = str(path.relative_to(REPO))
        if path.name != "_base.json":
            assert rel in covered, f"{rel} stands for no old recipe; add it to the checks"
        rc.resolve(path)  # bases too are whole recipes


def test_run_names_come_from_the_file_and_the_seed():
    assert rc.resolve(REPO / "configs/ablation/all.json").name == "ablation-all"
    r = rc.resolve(REPO / "configs/ablation/all.json", seed=1)
    assert r.name == "ablation-all_seed1" and r.model["name"] == "fakedet-ablation-all_seed1"
    assert r.train.seed == 1
    same = rc.resolve(REPO / "configs/continue.json", seed=1)  # the recipe's own seed: no suffix
    assert same.name == "continue" and same.train.seed == 1
    assert rc.resolve(REPO / "configs/loso/long/without_lfw_faceswap.json").name == "loso-long-without_lfw_faceswap"


def test_set_overrides_take_json_values_and_plain_strings(tmp_path):
    r = rc.resolve(REPO / "configs/base.json", sets=[
        "train.steps=2", "train.augment.p_jpeg=0", "data.train_sets=[\"lfw_faceswap\"]",
        "train.init_from=runs/x/final.safetensors", "train.init=null", "model.preprocess.global_size=96"])
    assert r.train.steps == 2 and r.train.augment.p_jpeg == 0 and r.train.augment.p_crop == 0.5
    assert r.data.train_sets == ["lfw_faceswap"] and r.data.calibration == ["lfw_faceswap"]
    assert r.train.init_from == "runs/x/final.safetensors" and r.train.init is None
    assert r.model["preprocess"] == {"global_size": 96, "patch_size": 32, "num_patches": 8, "min_size": 32}
    with pytest.raises(rc.RecipeError, match="KEY=VALUE"):
        rc.resolve(REPO / "configs/base.json", sets=["train.steps"])


@pytest.mark.parametrize("assignment, message", [
    ("train.stpes=3", r"unknown recipe key 'train.stpes' \(did you mean 'steps'\?\)"),
    ("train.augment.p_jpg=0.3", r"unknown recipe key 'train.augment.p_jpg' \(did you mean 'p_jpeg'\?\)"),
    ("trian.steps=3", r"unknown recipe key 'trian'"),
    ("train.steps=\"many\"", r"train.steps must be a int"),
    ("train.sbi_sets=\"lfw_faceswap\"", r"train.sbi_sets must be a list"),
    ("calibration.rule=\"median\"", r"calibration.rule must be 'pooled' or 'macro'"),
    ("model.colour_binz=4", r"model: .*colour_binz"),
])
def test_an_unknown_key_or_a_wrong_value_is_an_error_that_names_it(assignment, message):
    with pytest.raises(rc.RecipeError, match=message):
        rc.resolve(REPO / "configs/base.json", sets=[assignment])


def test_a_misspelt_key_in_a_file_is_an_error_and_bases_merge(tmp_path):
    (tmp_path / "base.json").write_text(json.dumps({
        "name": "never-inherited", "model": {"name": "m", "backbone": "tf_efficientnet_lite0"},
        "data": {"train_sets": ["a", "b"], "eval_sets": ["a"]},
        "train": {"steps": 5, "batch_size": 2, "lr": 0.1, "augment": {"p_jpeg": 0.9}}}))
    (tmp_path / "child.json").write_text(json.dumps({
        "extends": "base.json", "data": {"train_sets": ["c"]}, "train": {"augment": {"p_webp": 0.0}}}))
    r = rc.resolve(tmp_path / "child.json")
    assert r.name == "child" and r.data.train_sets == ["c"] and r.data.eval_sets == ["a"]
    assert (r.train.augment.p_jpeg, r.train.augment.p_webp, r.train.augment.p_blur) == (0.9, 0.0, 0.1)
    (tmp_path / "bad.json").write_text(json.dumps({"extends": "base.json", "train": {"warmpu": 5}}))
    with pytest.raises(rc.RecipeError, match="'train.warmpu'.*'warmup'"):
        rc.resolve(tmp_path / "bad.json")
    (tmp_path / "loop.json").write_text(json.dumps({"extends": "loop.json"}))
    with pytest.raises(rc.RecipeError, match="extends itself"):
        rc.resolve(tmp_path / "loop.json")
    with pytest.raises(rc.RecipeError, match="gives no 'train.lr'"):
        rc.validate({"model": {}, "data": {"train_sets": [], "eval_sets": []},
                     "train": {"steps": 1, "batch_size": 1}})


def test_a_saved_recipe_resolves_to_itself(tmp_path):
    r = rc.resolve(REPO / "configs/ablation/all_sbi2.json", sets=["train.steps=7"], seed=3)
    r.save(tmp_path / "recipe.json")
    again = rc.resolve(tmp_path / "recipe.json")
    assert again.to_dict() == r.to_dict()


def test_the_data_sets_are_defined_once():
    assert sets.names(sets.PAIRED) == ["dfdc_faceswap", "lfw_faceswap", "cifake_sd14", "stylegan2_faces"]
    assert sets.names(faces=True) == ["dfdc_faceswap", "lfw_faceswap", "stylegan2_faces"]
    assert list(sets.CORE) == rc.resolve(REPO / "configs/base.json").data.train_sets
    assert len(sets.names(core=False)) == 9
    assert sets.BY_NAME["sd15_finetunes"].kind == sets.FAKE_ONLY
    readme = REPO.parent / "shared" / "data" / "README.md"
    if readme.is_file():  # every set of the data README is listed, and no other
        table = {line.split("|")[1].strip() for line in readme.read_text().splitlines()
                 if line.startswith("| ") and "_" in line.split("|")[1]}
        assert table == set(sets.names(core=False))


def test_the_data_root_comes_from_the_environment_or_sits_beside_the_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv("FAKEDET_DATA", str(tmp_path))
    assert sets.data_root() == tmp_path
    monkeypatch.delenv("FAKEDET_DATA")
    assert sets.data_root() == REPO.parent / "shared" / "data"
    assert sets.manifest("lfw_faceswap", tmp_path) == str(tmp_path / "lfw_faceswap" / "manifest.csv")


def test_the_trust_recipe_is_the_run_its_decision_record_names():
    """configs/trust.json: the shipped weights continued on all nine sets (the run that
    docs/decisions/2026-12-01-verdicts-and-trust-weights.md says was stopped at step 50)."""
    from fakedet.data.sets import BY_NAME

    r = rc.resolve(REPO / "configs/trust.json")
    assert r.data.train_sets == list(BY_NAME) and r.data.eval_sets == list(BY_NAME)
    t = r.train
    assert (t.steps, t.lr, t.warmup, t.seed, t.sbi_share) == (1000, 3e-4, 50, 0, 0.15)
    # the weights configs/base.json makes, not weights/: those are H2's since it shipped
    assert t.init_from == "runs/default/final.safetensors" and not t.legacy_augment_seed
    assert set(t.sbi_sets) == {n for n, s in BY_NAME.items() if s.faces}


def test_the_trust_runs_of_the_continued_training_decision_differ_only_as_it_says():
    """docs/decisions/2026-12-01-trust-continued.md: A holds out ffpp_faces and
    unsplash_portraits (training, self-blends, calibration); C is A with reframing; B' is the
    trust recipe with reframing."""
    trust = rc.resolve(REPO / "configs/trust.json")
    a = rc.resolve(REPO / "configs/trust/without_ffpp_unsplash.json")
    c = rc.resolve(REPO / "configs/trust/without_ffpp_unsplash_frame.json")
    b = rc.resolve(REPO / "configs/trust/frame.json")
    held = {"ffpp_faces", "unsplash_portraits"}
    assert set(trust.data.train_sets) - set(a.data.train_sets) == held
    assert not held & (set(a.train.sbi_sets) | set(a.data.calibration))
    assert a.data.eval_sets == trust.data.eval_sets
    for r in (a, trust):
        assert r.train.augment.p_frame == 0
    for r in (b, c):
        assert r.train.augment.p_frame == 0.5
    da, dc = a.to_dict(), c.to_dict()
    dc["train"]["augment"]["p_frame"] = 0.0
    dt, db = trust.to_dict(), b.to_dict()
    db["train"]["augment"]["p_frame"] = 0.0
    assert ((da["data"], da["train"]) == (dc["data"], dc["train"])
            and (dt["data"], dt["train"]) == (db["data"], db["train"]))
    # D is A, and B'' the trust recipe, with stylegan2_faces cropped to its faces
    d = rc.resolve(REPO / "configs/trust/without_ffpp_unsplash_facecrop.json").to_dict()
    b2 = rc.resolve(REPO / "configs/trust/facecrop.json").to_dict()
    for x, base in ((d, da), (b2, dt)):
        assert x["train"].pop("face_crop_sets") == ["stylegan2_faces"]
        assert x["train"].pop("face_crop_boxes") == "runs/face_boxes_sg2.json"
        rest = dict(base["train"])
        rest.pop("face_crop_sets"), rest.pop("face_crop_boxes")
        assert (x["data"], x["train"]) == (base["data"], rest)

    # F1 and F2 are A and D trained from ImageNet weights
    for fresh, cont in (("fresh_without_ffpp_unsplash", "without_ffpp_unsplash"),
                        ("fresh_without_ffpp_unsplash_facecrop", "without_ffpp_unsplash_facecrop")):
        f = rc.resolve(REPO / f"configs/trust/{fresh}.json").to_dict()
        c = rc.resolve(REPO / f"configs/trust/{cont}.json").to_dict()
        assert (f["train"]["init_from"], f["train"]["init"], f["train"]["lr"], f["train"]["warmup"]) == (
            None, "efficientnet_lite0", 0.001, 100)
        for k in ("init_from", "init", "lr", "warmup"):
            f["train"].pop(k), c["train"].pop(k)
        assert (f["data"], f["train"]) == (c["data"], c["train"])
    # F3 is F1 without stylegan2_faces
    f1 = rc.resolve(REPO / "configs/trust/fresh_without_ffpp_unsplash.json")
    f3 = rc.resolve(REPO / "configs/trust/fresh_without_ffpp_unsplash_stylegan2.json")
    assert set(f1.data.train_sets) - set(f3.data.train_sets) == {"stylegan2_faces"}
    assert set(f1.train.sbi_sets) - set(f3.train.sbi_sets) == {"stylegan2_faces"}
    assert "stylegan2_faces" not in f3.data.calibration and f3.data.eval_sets == f1.data.eval_sets
    d1, d3 = f1.to_dict()["train"], f3.to_dict()["train"]
    d1.pop("sbi_sets"), d3.pop("sbi_sets")
    assert d1 == d3
    # docs/decisions/2026-12-01-sd15-look.md: G1 is F1 without sd15_finetunes (a fake-only set:
    # no self-blends to drop), G2 is F1 with sd15_finetunes read through the texture branch only
    g1 = rc.resolve(REPO / "configs/trust/fresh_without_ffpp_unsplash_sd15.json")
    assert set(f1.data.train_sets) - set(g1.data.train_sets) == {"sd15_finetunes"}
    assert "sd15_finetunes" not in g1.data.calibration and g1.data.eval_sets == f1.data.eval_sets
    assert g1.to_dict()["train"] == f1.to_dict()["train"]
    g2 = rc.resolve(REPO / "configs/trust/fresh_without_ffpp_unsplash_sd15texture.json").to_dict()
    assert g2["train"].pop("texture_only_sets") == ["sd15_finetunes"] and f1.train.texture_only_sets == []
    d1 = f1.to_dict()
    d1["train"].pop("texture_only_sets")
    assert (g2["data"], g2["train"]) == (d1["data"], d1["train"])
    # H is G2 trained as long as the shipped weights (configs/base.json)
    h = rc.resolve(REPO / "configs/trust/h_sd15texture_4000.json").to_dict()
    assert h["train"].pop("steps") == rc.resolve(REPO / "configs/base.json").train.steps == 4000
    g2["train"].pop("steps")
    g2["train"]["texture_only_sets"] = ["sd15_finetunes"]
    assert (h["data"], h["train"]) == (g2["data"], g2["train"])
    # H1 is G1 trained as long as the shipped weights
    h1 = rc.resolve(REPO / "configs/trust/h1_without_sd15_4000.json").to_dict()
    assert h1["train"].pop("steps") == 4000
    g1d = g1.to_dict()
    g1d["train"].pop("steps")
    assert (h1["data"], h1["train"]) == (g1d["data"], g1d["train"])
    # H2 is A without sd15_finetunes (training and calibration), continued as A is
    h2 = rc.resolve(REPO / "configs/trust/h2_continue_without_sd15.json").to_dict()
    h3 = rc.resolve(REPO / "configs/trust/h3_continue_with_ffpp.json").to_dict()
    assert h2["data"].pop("train_sets") == g1.data.train_sets
    assert set(da["data"].pop("train_sets")) - set(g1.data.train_sets) == {"sd15_finetunes"}
    assert h2["train"]["init_from"] == "runs/default/final.safetensors"
    assert (h2["data"], h2["train"]) == (da["data"], da["train"])
    # H3 is H2 with ffpp_faces trained on, its reals self-blended too
    assert h3["data"].pop("train_sets") == g1.data.train_sets + ["ffpp_faces"]
    assert h3["train"].pop("sbi_sets") == h2["train"].pop("sbi_sets") + ["ffpp_faces"]
    assert (h3["data"], h3["train"]) == (h2["data"], h2["train"])


def test_h4w_is_h4_mixed_half_and_half_with_h3():
    h4 = rc.resolve(REPO / "configs/trust/h4_longer.json").to_dict()
    h4w = rc.resolve(REPO / "configs/trust/h4w_interpolated.json").to_dict()
    assert h4w["train"].pop("interpolate_with") == h4["train"]["init_from"]
    assert h4w["train"].pop("interpolate_weight") == 0.5
    assert (h4["train"].pop("interpolate_with"), h4["train"].pop("interpolate_weight")) == (None, None)
    assert sections(h4w) == sections(h4)


def test_h3n_and_h3s_are_h3_without_self_blends_and_with_twice_their_share():
    h3 = rc.resolve(REPO / "configs/trust/h3_continue_with_ffpp.json").to_dict()
    h3n = rc.resolve(REPO / "configs/trust/h3n_without_sbi.json").to_dict()
    h3s = rc.resolve(REPO / "configs/trust/h3s_more_sbi.json").to_dict()
    assert (h3["train"].pop("sbi_share"), h3n["train"].pop("sbi_share"), h3s["train"].pop("sbi_share")) == (
        0.15, 0.0, 0.3)
    assert h3n["train"].pop("sbi_sets") == [] and h3s["train"]["sbi_sets"] == h3["train"]["sbi_sets"]
    h3["train"].pop("sbi_sets")
    h3s["train"].pop("sbi_sets")
    for other in (h3n, h3s):
        assert sections(other) == sections(h3)


def test_h4_is_h3_continued_from_h3_for_longer_with_another_seed():
    h3 = rc.resolve(REPO / "configs/trust/h3_continue_with_ffpp.json").to_dict()
    h4 = rc.resolve(REPO / "configs/trust/h4_longer.json").to_dict()
    assert h4["train"].pop("init_from") == "runs/trust/h3_continue_with_ffpp/final.safetensors"
    assert (h4["train"].pop("steps"), h4["train"].pop("seed")) == (2000, 1)
    assert h4["train"].pop("save_every") == 100
    for key in ("init_from", "steps", "seed", "save_every"):
        h3["train"].pop(key)
    assert sections(h4) == sections(h3)


@pytest.mark.parametrize("method", ["Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures"])
def test_leave_one_method_out_recipes_are_h3_without_that_method(method):
    import fnmatch

    h3 = rc.resolve(REPO / "configs/trust/h3_continue_with_ffpp.json").to_dict()
    lomo = rc.resolve(REPO / f"configs/trust/lomo_{method.lower()}.json").to_dict()
    patterns = lomo["data"].pop("exclude_groups")
    assert h3["data"].pop("exclude_groups") == []
    assert (lomo["data"], lomo["train"], lomo["calibration"]) == (h3["data"], h3["train"], h3["calibration"])
    # the manifest's groups look like ffpp-<split>-<method>-v<video>; the originals' are "real"
    hit = lambda g: any(fnmatch.fnmatchcase(g, p) for p in patterns)  # noqa: E731
    assert hit(f"ffpp-train-{method}-v12") and hit(f"ffpp-test-{method}-v3")
    others = {"Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures", "real"} - {method}
    assert not any(hit(f"ffpp-train-{m}-v12") for m in others)


@pytest.mark.parametrize("method", ["Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures"])
def test_leave_one_method_out_recipes_for_h6_are_h6_without_that_method(method):
    h6 = rc.resolve(REPO / "configs/trust/h6_h5_recipe_second_draw.json").to_dict()
    lomo = rc.resolve(REPO / f"configs/trust/lomo_h6_{method.lower()}.json").to_dict()
    h3_lomo = rc.resolve(REPO / f"configs/trust/lomo_{method.lower()}.json").to_dict()
    assert lomo["data"].pop("exclude_groups") == h3_lomo["data"]["exclude_groups"] == [f"ffpp-*-{method}-*"]
    assert h6["data"].pop("exclude_groups") == []
    assert lomo["train"]["init_from"] == "runs/trust/h6_stage1/final.safetensors"
    assert (lomo["data"], lomo["train"], lomo["calibration"]) == (h6["data"], h6["train"], h6["calibration"])


@pytest.mark.parametrize("source", ["dfdc_faceswap", "lfw_faceswap", "cifake_sd14", "stylegan2_faces",
                                    "imagenet_real_photos", "utkface_real", "ffpp_faces"])
def test_leave_one_real_source_out_recipes_are_h6s_sets_without_that_source_in_one_short_stage(source):
    h6 = rc.resolve(REPO / "configs/trust/h6_h5_recipe_second_draw.json").to_dict()
    r = rc.resolve(REPO / f"configs/loso_real/without_{source}.json").to_dict()
    assert r["data"].pop("train_sets") == [s for s in h6["data"].pop("train_sets") if s != source]
    assert r["train"].pop("sbi_sets") == [s for s in h6["train"].pop("sbi_sets") if s != source]
    assert r["data"].pop("eval_sets") == ["imagenet_real_photos"]  # (calibration reads the val splits)
    # one stage from ImageNet weights, 400 steps at the first stage's learning rate
    assert (r["train"].pop("init"), r["train"].pop("init_from")) == ("efficientnet_lite0", None)
    assert (r["train"].pop("steps"), r["train"].pop("lr"), r["train"].pop("warmup")) == (400, 0.001, 100)
    for key in ("init", "init_from", "steps", "lr", "warmup"):
        h6["train"].pop(key)
    h6["data"].pop("eval_sets")
    assert (r["data"], r["train"], r["calibration"]) == (h6["data"], h6["train"], h6["calibration"])


def test_lomo_deepfakes_sbi30_is_lomo_deepfakes_with_h3s_self_blend_share():
    lomo = rc.resolve(REPO / "configs/trust/lomo_deepfakes.json").to_dict()
    more = rc.resolve(REPO / "configs/trust/lomo_deepfakes_sbi30.json").to_dict()
    h3s = rc.resolve(REPO / "configs/trust/h3s_more_sbi.json")
    assert (lomo["train"].pop("sbi_share"), more["train"].pop("sbi_share")) == (0.15, h3s.train.sbi_share)
    assert sections(more) == sections(lomo)



def test_soups_are_h3s_mixed_with_h4_or_with_h4w():
    h3s = rc.resolve(REPO / "configs/trust/h3s_more_sbi.json").to_dict()
    h4 = rc.resolve(REPO / "configs/trust/h4_longer.json")
    h4w = rc.resolve(REPO / "configs/trust/h4w_interpolated.json")
    s2 = rc.resolve(REPO / "configs/trust/s2_soup_h3s_h4.json").to_dict()
    s3 = rc.resolve(REPO / "configs/trust/s3_soup_h3_h3s_h4.json").to_dict()
    # S2: half H3s, half H4 (H4's run folder is the one its recipe trains into)
    assert s2["train"].pop("interpolate_with") == "runs/trust/h4_longer/final.safetensors"
    assert s2["train"].pop("interpolate_weight") == 0.5
    # S3: H4w is half H3 (H4's parent), half H4; mixed with H3s at 2/3 it gives a third of each
    assert h4w.train.interpolate_with == h4.train.init_from and h4w.train.interpolate_weight == 0.5
    assert s3["train"].pop("interpolate_with") == "runs/trust/h4w_interpolated/final.safetensors"
    w = s3["train"].pop("interpolate_weight")
    assert abs((1 - w) - 1 / 3) < 1e-9 and abs(w * h4w.train.interpolate_weight - 1 / 3) < 1e-9
    assert (h3s["train"].pop("interpolate_with"), h3s["train"].pop("interpolate_weight")) == (None, None)
    for soup in (s2, s3):
        assert sections(soup) == sections(h3s)


def test_seed_soups_are_h3_mixed_with_itself_in_equal_thirds():
    h3 = rc.resolve(REPO / "configs/trust/h3_continue_with_ffpp.json").to_dict()
    x2 = rc.resolve(REPO / "configs/trust/h3x2_soup.json").to_dict()
    x3 = rc.resolve(REPO / "configs/trust/h3x3_soup.json").to_dict()
    # H3x2: seed 1's network half and half with H3's (seed 0), in the folder H3's recipe trains into
    assert x2["train"].pop("interpolate_with") == "runs/trust/h3_continue_with_ffpp/final.safetensors"
    assert x2["train"].pop("interpolate_weight") == 0.5
    # H3x3: seed 2 mixed at w with H3x2 gives each seed a third
    assert x3["train"].pop("interpolate_with") == "runs/trust/h3x2_soup/final.safetensors"
    w = x3["train"].pop("interpolate_weight")
    assert abs((1 - w) - 1 / 3) < 1e-9 and abs(w * 0.5 - 1 / 3) < 1e-9
    assert (h3["train"].pop("interpolate_with"), h3["train"].pop("interpolate_weight")) == (None, None)
    for soup in (x2, x3):
        assert sections(soup) == sections(h3)


def test_h5_is_h3_continued_from_a_stage_one_that_never_saw_sd15():
    h1 = rc.resolve(REPO / "configs/trust/h1_without_sd15_4000.json", seed=1)
    h3 = rc.resolve(REPO / "configs/trust/h3_continue_with_ffpp.json").to_dict()
    h5 = rc.resolve(REPO / "configs/trust/h5_continue_without_sd15_ever.json").to_dict()
    # stage 1 is H1's recipe with seed 1, trained from ImageNet weights without sd15_finetunes
    assert "sd15_finetunes" not in h1.data.train_sets and h1.train.init_from is None
    assert (h1.train.steps, h1.train.seed) == (4000, 1)
    assert h5["train"].pop("init_from") == "runs/trust/h5_stage1/final.safetensors"
    assert h3["train"].pop("init_from") == "runs/default/final.safetensors"
    # stage 2 is H3's, which trains on no sd15_finetunes either
    assert "sd15_finetunes" not in h5["data"]["train_sets"]
    assert sections(h5) == sections(h3)


def test_h6_is_h5_with_a_stage_one_of_another_seed():
    h5 = rc.resolve(REPO / "configs/trust/h5_continue_without_sd15_ever.json").to_dict()
    h6 = rc.resolve(REPO / "configs/trust/h6_h5_recipe_second_draw.json").to_dict()
    stage1 = rc.resolve(REPO / "configs/trust/h1_without_sd15_4000.json", seed=2)
    assert (stage1.train.steps, stage1.train.seed, stage1.train.init_from) == (4000, 2, None)
    assert "sd15_finetunes" not in stage1.data.train_sets
    assert h6["train"].pop("init_from") == "runs/trust/h6_stage1/final.safetensors"
    assert h5["train"].pop("init_from") == "runs/trust/h5_stage1/final.safetensors"
    assert sections(h6) == sections(h5)


def test_h3u_is_h3_with_the_unsplash_portraits_trained_on_and_self_blended():
    h3 = rc.resolve(REPO / "configs/trust/h3_continue_with_ffpp.json").to_dict()
    h3u = rc.resolve(REPO / "configs/trust/h3u_with_unsplash.json").to_dict()
    for key in (("data", "train_sets"), ("train", "sbi_sets")):
        assert h3u[key[0]].pop(key[1]) == h3[key[0]].pop(key[1]) + ["unsplash_portraits"]
    # without the portraits it is H3 itself: H3's held-out figure is its leave-one-source-out one
    assert sections(h3u) == sections(h3)


def test_h3b_is_h3u_with_more_self_blends_of_the_real_only_face_sets():
    from fakedet.training.datasets import balanced_weights
    h3u = rc.resolve(REPO / "configs/trust/h3u_with_unsplash.json").to_dict()
    h3b = rc.resolve(REPO / "configs/trust/h3b_with_unsplash_blended.json").to_dict()
    weights = h3b["train"].pop("sbi_set_weights")
    assert h3u["train"].pop("sbi_set_weights") is None
    assert sections(h3b) == sections(h3u)
    # the sets named are the real-only ones among the self-blended: their look has no genuine fakes
    assert set(weights) == {"utkface_real", "unsplash_portraits"} <= set(h3b["train"]["sbi_sets"])
    # shares of the samples (one item per cell is enough): self-blends of a real-only set become
    # 2/3 of its reals' share, those of every other set 2/3 of what they were; reals unchanged
    sets = h3b["data"]["train_sets"]
    real_only = {"imagenet_real_photos", "utkface_real", "unsplash_portraits"}
    items = [(f"{n}/r.jpg", 0, n, None) for n in sets] + [(f"{n}/f.jpg", 1, n, None) for n in sets
                                                           if n not in real_only]
    items += [(f"{n}/s.jpg", 1, n, "sbi") for n in h3b["train"]["sbi_sets"]]
    share = dict(zip([(it[2], it[1], it[3]) for it in items],
                     balanced_weights(items, {"sbi": h3b["train"]["sbi_share"]}, {"sbi": weights})))
    old = dict(zip([(it[2], it[1], it[3]) for it in items], balanced_weights(items, {"sbi": 0.15})))
    for n in weights:
        assert share[(n, 1, "sbi")] == pytest.approx(2 / 3 * share[(n, 0, None)])
    assert share[("dfdc_faceswap", 1, "sbi")] == pytest.approx(2 / 3 * old[("dfdc_faceswap", 1, "sbi")])
    assert all(share[k] == pytest.approx(old[k]) for k in old if k[2] is None)


def test_h3g_is_h3s_with_h3s_genuine_fake_share_restored_from_the_reals():
    from fakedet.training.datasets import balanced_weights
    h3 = rc.resolve(REPO / "configs/trust/h3_continue_with_ffpp.json")
    h3s = rc.resolve(REPO / "configs/trust/h3s_more_sbi.json").to_dict()
    h3g = rc.resolve(REPO / "configs/trust/h3g_more_sbi_same_genuine.json").to_dict()
    assert (h3s["train"].pop("real_share"), h3g["train"].pop("real_share")) == (0.5, 0.35)
    assert sections(h3g) == sections(h3s)
    # one item per cell: the genuine fakes' share of the samples is H3's, the self-blends' H3s's
    sets, real_only = h3g["data"]["train_sets"], {"imagenet_real_photos", "utkface_real"}
    items = [(f"{n}/r.jpg", 0, n, None) for n in sets] + [(f"{n}/f.jpg", 1, n, None) for n in sets
                                                           if n not in real_only]
    items += [(f"{n}/s.jpg", 1, n, "sbi") for n in h3g["train"]["sbi_sets"]]

    def by_kind(share, real):
        w = balanced_weights(items, {"sbi": share}, None, real)
        return {k: sum(x for it, x in zip(items, w) if (it[1], it[3]) == k) for k in ((0, None), (1, None), (1, "sbi"))}
    g, old = by_kind(h3g["train"]["sbi_share"], 0.35), by_kind(h3.train.sbi_share, h3.train.real_share)
    assert g[(1, None)] == pytest.approx(old[(1, None)]) == pytest.approx(0.35)
    assert g[(1, "sbi")] == pytest.approx(0.30) and g[(0, None)] == pytest.approx(0.35)


@pytest.mark.parametrize("method", ["Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures"])
def test_short_leave_one_method_out_recipes_are_the_short_base_without_that_method(method):
    base = rc.resolve(REPO / "configs/loso_real/_base.json").to_dict()
    lomo = rc.resolve(REPO / f"configs/lomo_short/without_{method.lower()}.json").to_dict()
    assert lomo["data"].pop("exclude_groups") == [f"ffpp-*-{method}-*"]
    assert base["data"].pop("exclude_groups") == []
    assert "ffpp_faces" in lomo["data"]["train_sets"] and lomo["train"]["steps"] == 400
    assert (lomo["data"], lomo["train"], lomo["calibration"]) == (base["data"], base["train"], base["calibration"])
