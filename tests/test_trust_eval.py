"""The checkpoint comparison of the trust decisions (experiments/trust_eval.py): the members' mean column."""


import pytest

from fakedet.evaluation.verdicts import RuleUnmet

from conftest import load_experiment

te = load_experiment("trust_eval")


def result(auc, caught, portraits, t_fake):
    return {"weights": f"runs/{auc}.safetensors", "sha256": f"{auc}", "t_fake": t_fake, "t_real": t_fake / 2,
            "val_auc": {"dfdc_faceswap": auc, "lfw_faceswap": auc + 0.05, "ffpp_faces": auc - 0.1},
            "val_fake_caught": {"dfdc_faceswap": caught}, "val_fake_caught_mean": caught,
            "val_real_labelled_fake": {"dfdc_faceswap": 0.0},
            "heldout": {"unsplash_portraits": {"n": 229, "n_real": 229, "n_fake": 0,
                                               "real_labelled_fake": portraits,
                                               "real_labelled_uncertain": 0.5,
                                               "fake_labelled_fake": None, "auc": None}}}


def test_the_members_mean_averages_every_figure_and_no_threshold():
    m = te.members_mean([result(0.8, 0.4, 0.05, 0.99), result(0.9, 0.5, 0.20, 0.95), result(0.85, 0.3, 0.11, 0.9)])
    assert m["val_auc"]["dfdc_faceswap"] == pytest.approx(0.85)
    assert m["val_auc"]["ffpp_faces"] == pytest.approx(0.75)
    assert m["val_fake_caught_mean"] == pytest.approx(0.4)
    assert m["heldout"]["unsplash_portraits"]["real_labelled_fake"] == pytest.approx(0.12)
    # a figure that no member has stays missing; counts are not averaged; thresholds are each run's own
    assert m["heldout"]["unsplash_portraits"]["auc"] is None
    assert m["heldout"]["unsplash_portraits"]["n_real"] == 229
    assert m["t_fake"] is None and m["t_real"] is None and m["sha256"] is None


def test_a_member_without_weights_is_refused_before_anything_is_scored(monkeypatch, capsys):
    def study(*a, **k):
        raise AssertionError("scored before the arguments were checked")

    monkeypatch.setattr(te, "study", study)
    with pytest.raises(SystemExit) as e:
        te.main(["--weights", "A=a.safetensors", "--real-sources", "dfdc_faceswap",
                 "--fake-sources", "dfdc_faceswap", "--members", "A,B"])
    assert e.value.code == 2
    assert "--members names no --weights entry: B" in capsys.readouterr().err


def test_the_table_prints_the_members_mean_column(monkeypatch, capsys):
    runs = {"a.safetensors": result(0.8, 0.4, 0.05, 0.99), "b.safetensors": result(0.9, 0.5, 0.20, 0.95)}
    monkeypatch.setattr(te, "study", lambda path, *a: runs[str(path)])
    assert te.main(["--weights", "A=a.safetensors", "--weights", "B=b.safetensors",
                    "--real-sources", "dfdc_faceswap", "--fake-sources", "dfdc_faceswap",
                    "--members", "A,B"]) == 0
    out = capsys.readouterr().out
    assert "| figure | A | B | mean(A,B) |" in out
    assert "| t_fake | 0.990000 | 0.950000 | – |" in out
    assert "| val AUC dfdc_faceswap | 0.800 | 0.900 | 0.850 |" in out
    assert "real labelled fake | 0.050 | 0.200 | 0.125 |" in out
    assert "| val AUC mean of dfdc_faceswap, lfw_faceswap, ffpp_faces | 0.7833 | 0.8833 | 0.8333 |" in out


def test_leave_one_real_source_out_chooses_the_loosest_rule_that_keeps_every_source_within_the_bound():
    lr = load_experiment("loso_real")
    grid = {0.02: {"a": 0.16, "b": 0.01}, 0.01: {"a": 0.05, "b": 0.0}, 0.005: {"a": 0.02, "b": 0.0}}
    assert lr.choose_rule(grid) == (0.01, True)  # 0.05 is within the bound of 0.05
    # none within: the smallest worst share, the looser rule on a tie
    grid = {0.02: {"a": 0.30}, 0.01: {"a": 0.12}, 0.005: {"a": 0.12}}
    assert lr.choose_rule(grid) == (0.01, False)


def test_leave_one_real_source_out_reads_the_source_from_the_run_folder(tmp_path):
    lr = load_experiment("loso_real")
    assert lr.held_out(tmp_path / "without_lfw_faceswap") == "lfw_faceswap"
    with pytest.raises(SystemExit):
        lr.held_out(tmp_path / "loso-lfw")


def test_a_checkpoint_whose_thresholds_cannot_meet_the_rules_is_left_out_and_said(monkeypatch, capsys):
    runs = {"a.safetensors": result(0.8, 0.4, 0.05, 0.99), "b.safetensors": result(0.9, 0.5, 0.20, 0.95)}

    def study(path, *a):
        if str(path) == "c.safetensors":
            raise RuleUnmet("no fake threshold meets the rule: more than 2% of a source's real scores are 1.0")
        return runs[str(path)]

    monkeypatch.setattr(te, "study", study)
    assert te.main(["--weights", "A=a.safetensors", "--weights", "C=c.safetensors", "--weights", "B=b.safetensors",
                    "--real-sources", "dfdc_faceswap", "--fake-sources", "dfdc_faceswap",
                    "--members", "A,B,C"]) == 0
    out, err = capsys.readouterr()
    assert "C: no fake threshold meets the rule" in err and "left out" in err
    assert "| figure | A | B | mean(A,B) |" in out


def test_leave_one_real_source_out_goes_on_past_a_run_whose_rule_cannot_be_met(tmp_path, monkeypatch, capsys):
    import numpy as np

    lr = load_experiment("loso_real")
    runs = [tmp_path / "without_lfw_faceswap", tmp_path / "without_dfdc_faceswap"]
    for r in runs:
        r.mkdir()
        (r / "final.safetensors").write_bytes(b"")
    saturated = "lfw"  # the run without dfdc: its lfw real scores are all 1.0

    def scores(weights, name, split, cache, load):
        y = np.array([0] * 10 + [1] * 10)
        p = np.linspace(0.0, 0.9, 20)
        if saturated in name and "without_dfdc" in str(weights):
            p = np.where(y == 0, 1.0, p)
        return y, p

    monkeypatch.setattr(lr, "scores", scores)
    grid = lr.rule_grid(runs, tmp_path)
    assert grid[0.001]["dfdc_faceswap"] is None and grid[0.001]["lfw_faceswap"] == 0.0
    assert "without_dfdc_faceswap: no fake threshold meets the rule" in capsys.readouterr().err
    # a rule some run could not meet is never the one kept
    assert lr.choose_rule({0.02: {"a": 0.01, "b": None}, 0.01: {"a": 0.03, "b": 0.04}}) == (0.01, True)
    assert lr.fake_thresholds(runs, tmp_path, None) == 0  # the other run still gets its threshold
    assert "without_dfdc_faceswap: no fake threshold meets the rule" in capsys.readouterr().err
