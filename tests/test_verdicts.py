"""The three verdicts' threshold rules (fakedet.evaluation.verdicts), read from val scores only."""

import numpy as np
import pytest

from fakedet.evaluation.verdicts import choose, fake_threshold, percent, real_threshold, verdict


def test_the_fake_threshold_keeps_every_real_source_within_its_share():
    easy = np.linspace(0.0, 0.5, 100)  # a large easy source
    hard = np.linspace(0.5, 0.99, 50)  # a small hard one: it sets the threshold
    for share in (0.02, 0.005):
        t = fake_threshold([easy, hard], share)
        for g in (easy, hard):
            assert np.mean(g >= t) <= share
        assert np.mean(hard >= np.nextafter(t, 0)) > share  # the smallest such threshold
    assert fake_threshold([easy, hard], 0.005) > fake_threshold([easy, hard], 0.02) > 0.9


def test_the_real_threshold_lets_at_most_the_share_of_fakes_below_it_and_stays_under_the_fake_one():
    fakes = [np.linspace(0.1, 1.0, 100), np.linspace(0.0, 0.3, 10)]
    t = real_threshold(fakes, 0.10, cap=0.2)
    assert t <= 0.2
    assert np.mean([np.mean(f < t) for f in fakes]) <= 0.10


def test_the_rule_names_its_shares_as_they_are():
    th = choose({"a": np.linspace(0, 1, 1000)}, {"b": np.linspace(0, 1, 1000)}, max_fpr=0.005)
    assert "more than 0.5% of its images" in th.rule and "at most 10% of fake" in th.rule
    assert percent(0.02) == "2%" and percent(0.001) == "0.1%"
    assert verdict(th.fake, th.fake, th.real) == "fake"
    assert verdict(np.nextafter(th.real, 0), th.fake, th.real) == "real"


def test_the_per_source_real_rule_holds_every_fake_source_to_the_share():
    from fakedet.evaluation import verdicts

    easy = np.linspace(0.5, 1.0, 100)  # fakes the model is sure of
    hard = np.linspace(0.0, 0.5, 20)   # an unseen-looking source: half its fakes score low
    averaged = verdicts.real_threshold([easy, hard], 0.10)
    per_source = verdicts.real_threshold_per_source([easy, hard], 0.10)
    assert np.mean(hard < averaged) > 0.10  # the average hides the hard source
    assert np.mean(hard < per_source) <= 0.10 and np.mean(easy < per_source) <= 0.10
    assert per_source < averaged
    th = verdicts.choose({"r": [0.0, 0.1]}, {"e": easy, "h": hard}, 0.02, 0.10, real_rule="per-source")
    assert th.real == per_source and "no fake val source has more than 10% of its images labelled real" in th.rule


def test_a_tiny_threshold_is_printed_with_the_digits_that_place_it():
    from fakedet.evaluation.verdicts import threshold_text

    assert threshold_text(1.1323e-6) == "1.13e-06"  # not 0.000001, which a score just above it prints as
    assert threshold_text(0.99823025) == "0.998230" and threshold_text(0.00153) == "0.001530"


def test_calibrate_faces_replaces_only_the_real_clause_of_a_rule():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "calibrate_faces.py"
    spec = importlib.util.spec_from_file_location("calibrate_faces", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    new = "no fake val source has more than 1% of its images labelled real"
    fused = ("fake: F; real: at most 10% of fake val images labelled real, averaged over the fake sources; "
             "never below the whole-image fake threshold (val face composites, fused face score)")
    assert mod.replace_real_rule(fused, new) == (
        f"fake: F; real: {new}; never below the whole-image fake threshold (val face composites, fused face score)")
    alone = "fake: F; real: at most 10% of fake val images labelled real, averaged over the fake sources (val)"
    assert mod.replace_real_rule(alone, new) == f"fake: F; real: {new} (val)"
    assert mod.replace_real_rule("fake: F; real: old", new) == f"fake: F; real: {new}"


def test_calibrate_faces_real_only_refuses_what_its_record_forbids():
    import importlib.util
    from pathlib import Path

    from fakedet.evaluation.verdicts import VerdictThresholds

    path = Path(__file__).resolve().parents[1] / "experiments" / "calibrate_faces.py"
    spec = importlib.util.spec_from_file_location("calibrate_faces", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    stored = {"fake": 0.99, "real": 0.3, "rule": "fake: F; real: R"}
    assert mod.refuse_real_only(stored, VerdictThresholds(0.99, 0.05, "")) is None
    assert "differs from the stored" in mod.refuse_real_only(stored, VerdictThresholds(0.98, 0.05, ""))
    assert "above the stored" in mod.refuse_real_only(stored, VerdictThresholds(0.99, 0.4, ""))
    assert "no face-mode verdicts" in mod.refuse_real_only({}, VerdictThresholds(0.99, 0.05, ""))


def test_calibrate_faces_labels_composites_as_a_scan_does():
    """`real` on a composite needs its highest score (the whole image's included) below the
    threshold, as ``label_for`` gives it with the whole image gated."""
    import numpy as np

    from conftest import load_experiment

    mod = load_experiment("calibrate_faces")
    name = mod.FACE_SETS[0]
    p, y, names, found = np.array([0.01, 0.01]), np.array([1, 1]), np.array([name, name]), np.array([True, True])
    gated = mod._shares(p, y, names, found, 0.9, 0.2, p_any=np.array([0.01, 0.5]))[name]["fake_verdicts"]
    assert gated == {"fake": 0.0, "uncertain": 0.5, "real": 0.5}
    assert mod._shares(p, y, names, found, 0.9, 0.2)[name]["fake_verdicts"]["real"] == 1.0


def test_a_fake_rule_no_threshold_can_meet_is_an_error_not_a_threshold_that_breaks_it():
    """Real scores of exactly 1.0 beyond the allowed share: a threshold of 1.0 would label them
    fake, so the rule cannot be met and says so."""
    assert fake_threshold([[0.1, 0.5]], 0.0) == np.nextafter(0.5, 1.0)
    with pytest.raises(ValueError, match="no fake threshold meets the rule"):
        fake_threshold([[0.1, 1.0]], 0.0)
    assert fake_threshold([[0.1] * 99 + [1.0]], 0.01) == np.nextafter(0.1, 1.0)  # 1.0 within the share


def test_calibrate_faces_leaves_out_a_face_set_from_the_composites(tmp_path, monkeypatch):
    """A held-out study's face thresholds must not be chosen on the held-out set: --leave-out
    builds the composites of the other sets only, and refuses an unknown set or leaving none."""
    from conftest import load_experiment

    mod = load_experiment("calibrate_faces")
    built = {}

    def build(root, out, n, seed, split, bg_splits, sets):
        built["sets"] = list(sets)
        raise SystemExit(0)  # what follows needs images; the sets are what is checked

    monkeypatch.setattr(mod, "build", build)
    monkeypatch.setattr(mod.Detector, "load", lambda *a, **k: None)
    with pytest.raises(SystemExit):
        mod.main(["--leave-out", "dfdc_faceswap", "--data", str(tmp_path)])
    assert built["sets"] == [s for s in mod.FACE_SETS if s != "dfdc_faceswap"]
    for bad in ("dfdc", ",".join(mod.FACE_SETS)):
        with pytest.raises(SystemExit) as e:
            mod.main(["--leave-out", bad, "--data", str(tmp_path)])
        assert e.value.code == 2


def test_verdict_table_counts_each_class_and_margins_move_thresholds_the_right_way():
    from fakedet.evaluation.verdicts import moved, table_changes, verdict_table

    row = verdict_table([0, 0, 1, 1, 1], [0.01, 0.5, 0.2, 0.95, 0.999], fake=0.9, real=0.05)
    assert row["n_real"] == 2 and row["n_fake"] == 3
    assert row["real"] == {"fake": 0.0, "uncertain": 0.5, "real": 0.5}
    assert row["fake"]["fake"] == pytest.approx(2 / 3) and row["fake"]["uncertain"] == pytest.approx(1 / 3)
    assert verdict_table([1], [0.5], 0.9, 0.05)["real"] is None
    assert moved(0.5, 1e-4) > 0.5 > moved(0.5, -1e-4) and moved(0.0, 1.0) == 0.0 and moved(1.0, -1.0) == 1.0
    line, = table_changes({"a": row}, {"a": row}, "fake", 2)
    assert line.split() == ["a", "reals", "0.00", "->", "0.00", "fakes", "0.67", "->", "0.67"]


def test_a_fake_from_the_score_of_a_picture_scored_with_its_margins_is_uncertain(tiny_weights):
    """docs/decisions/2026-12-07-no-fake-verdict-from-a-framed-score.md: with three verdicts, a
    `fake` that only the whole image's score gives, on a picture scored with its wide margins
    (framed), is `uncertain`; the same picture cut out, and two-way verdicts, keep `fake`; so
    does a face's own score at the fake threshold."""
    import io

    from fakedet import Detector
    from fakedet.inference.explain import explain
    from fakedet.inference.result import verdict_of

    from conftest import random_image
    from conftest import story_screen as _story

    screen, _ = _story(random_image((540, 400), seed=7), "blur")
    buf = io.BytesIO()
    screen.save(buf, "PNG")
    for crop, framed_label in ((True, "fake"), (False, "uncertain")):
        det = Detector.load(tiny_weights, workers=0, crop=crop)
        det.cutoffs = (1e-9, 1e-12)  # every score fake, three verdicts
        r = det.predict([buf.getvalue()])[0]
        assert r.framed == (not crop) and r.label == r.model_label == framed_label
        _, ex = explain(det, buf.getvalue(), grid=4)  # explain draws the verdict a scan gives
        assert ex.framed == (not crop) and ex.label == framed_label
        det.cutoffs = (1e-9, 1e-9)  # two verdicts: for measuring the model, unchanged
        assert det.predict([buf.getvalue()])[0].label == "fake"
    assert verdict_of([0.99, 0.2], 0.99, 0.9, 0.01, framed=True) == "uncertain"  # the whole image's
    assert verdict_of([0.99, 0.95], 0.99, 0.9, 0.01, framed=True) == "fake"  # a face's own
    assert verdict_of([0.99], 0.99, 0.9, 0.01, framed=False) == "fake"
    assert verdict_of([0.001], 0.001, 0.9, 0.01, framed=True) == "real"
