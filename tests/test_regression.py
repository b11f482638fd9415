"""The shipped weights still reach their model-card figures on the test splits: AUC on the
sets with both classes (the four paired sets and ffpp_faces), and how often each
verdict is given on every set (real images labelled fake at most 0.02 above, fakes labelled fake
at most 0.05 below the figures stored in the checkpoint).

Skipped when ../shared/data is absent (a fresh clone has no training data). The figures come from
the checkpoint's own evaluation metadata, which weights/MODEL_CARD.md reports.
"""

import pytest

from fakedet import Detector
from fakedet.data.labelled import read_manifest
from fakedet.evaluation.metrics import auc
from fakedet.evaluation.report import score_labelled
from fakedet.model import checkpoint as checkpoint

from conftest import SHARED_DATA

# the sets with both classes
AUC_SETS = ["dfdc_faceswap", "lfw_faceswap", "cifake_sd14", "stylegan2_faces", "ffpp_faces"]
VERDICT_SETS = ["dfdc_faceswap", "lfw_faceswap", "cifake_sd14", "stylegan2_faces", "imagenet_real_photos",
                "sd15_finetunes", "ffpp_faces", "utkface_real", "unsplash_portraits"]

pytestmark = [pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data"),
              pytest.mark.slow]  # scans every test split: minutes


@pytest.fixture(scope="module")
def det():
    return Detector.load(device="cpu")


def _stored_and_scored(det, name, key):
    """The checkpoint's stored figures for set ``name`` under evaluation[``key``], and the set's
    test split scored now: (figures, labels, p_fake, verdicts)."""
    card = checkpoint.read_meta(checkpoint.default_weights_path()).evaluation.get(key, {})
    if name not in card:
        pytest.fail(f"the shipped checkpoint has no {key} figures for {name}")
    images = read_manifest(str(SHARED_DATA / name / "manifest.csv"), "test")
    y, p, errors, labels, _ = score_labelled(det, images, with_verdicts=True)
    assert not errors
    return card[name], y, p, labels


@pytest.mark.parametrize("name", AUC_SETS)
def test_test_split_auc_matches_model_card(det, name):
    card, y, p, _ = _stored_and_scored(det, name, "test")
    assert auc(y, p) >= card["auc"] - 0.02


@pytest.mark.parametrize("name", VERDICT_SETS)
def test_test_split_verdicts_match_model_card(det, name):
    card, y, _, labels = _stored_and_scored(det, name, "verdicts_test")
    if card["real"] is not None:
        assert (labels[y == 0] == "fake").mean() <= card["real"]["fake"] + 0.02
    if card["fake"] is not None:
        assert (labels[y == 1] == "fake").mean() >= card["fake"]["fake"] - 0.05


@pytest.mark.parametrize("name", ["lfw_faceswap", "ffpp_faces"])
def test_fused_face_mode_on_the_test_splits(name):
    """The shipped face expert in --faces (model card, "A fused face score in --faces"): alone
    it ranks the set's swaps well above chance on the largest face (0.834 and 0.690 when
    shipped); fused, face mode's AUC is no lower than the network's alone by more than 0.01 and
    no more real images get ``fake``."""
    from fakedet.model import expert as fx

    if not fx.default_expert_path().is_file():
        pytest.skip("no face expert shipped")
    import numpy as np

    images = read_manifest(str(SHARED_DATA / name / "manifest.csv"), "test")
    det = Detector.load(device="cpu", faces=True)
    assert det.expert is not None, "the shipped face expert does not pair with the shipped weights"
    recs = det.predict([im.path for im in images])
    assert all(r.ok for r in recs)
    y = np.array([im.label for im in images])
    face = np.array([bool(r.faces) for r in recs])
    expert = np.array([r.faces[0]["p_expert"] if r.faces else 0.5 for r in recs])
    assert face.mean() > 0.95
    assert auc(y[face], expert[face]) >= {"lfw_faceswap": 0.80, "ffpp_faces": 0.66}[name]
    fused = np.array([r.p_fake for r in recs])
    alone = np.array([max([r.p_whole] + [f["p_network"] for f in r.faces]) for r in recs])
    assert auc(y, fused) >= auc(y, alone) - 0.01
    t_alone = det.meta.cutoffs(faces=True)[0]
    assert ((fused >= det.face_cutoffs[0]) & (y == 0)).sum() <= ((alone >= t_alone) & (y == 0)).sum() + 1
