"""CLI layer: ``fakedet info``, a description of the model a checkpoint holds."""

from __future__ import annotations

import click

from fakedet.cli.common import CONTEXT, load_errors_exit, stdout
from fakedet.cli.options import json_option, weights_option

EXAMPLES = """\b
Examples:
  fakedet info                             the shipped model
  fakedet info -w my.safetensors           another checkpoint
  fakedet info --json > model.json        the same as JSON
"""


@click.command(context_settings=CONTEXT, epilog=EXAMPLES)
@weights_option
@json_option("Machine-readable output.")
def info(weights, as_json):
    """Describe the model: backbone, input handling, verdicts, training and evaluation."""
    import json

    from fakedet.evaluation.verdicts import threshold_text
    from fakedet.model import checkpoint as ckpt

    stdout()
    with load_errors_exit(click.get_current_context()):
        # from the file's header: neither torch nor the model is loaded
        d = ckpt.describe(weights if weights is not None else ckpt.default_weights_path())
    d["face_expert"] = _face_expert(d["sha256"])
    d["face_mode"] = _face_mode(d)
    d = _tame(d)  # free-form metadata: never a traceback, in text or JSON
    if as_json:
        from fakedet.data.writers import nan_to_none, utf8_all

        click.echo(json.dumps(utf8_all(nan_to_none(d)), indent=2, allow_nan=False))  # no lone surrogates
        return
    for line in in_short_of(d):
        click.echo(line)
    click.echo(f"model:        {d['name']}")
    built = ("timm's architecture, built by fakedet without timm" if d["backbone_built_by"] == "fakedet"
             else "built by timm: pip install 'fakedet[timm]'")
    click.echo(f"backbone:     {d['backbone']} ({built})")
    click.echo(f"branches:     {', '.join(d['branches'])}")
    click.echo(f"parameters:   {d['parameters']:,}")
    for k, v in d["input"].items():
        click.echo(f"input:        {k}: {v}")
    v, fv = d.get("verdicts"), d.get("face_verdicts")
    if v:
        click.echo(f"verdicts:     fake when p_fake >= {v['fake']:.6f}, real below {threshold_text(v['real'])}, "
                   f"uncertain in between (and where only the score of a picture scored with its wide margins "
                   f"reaches fake)  ({v.get('rule', 'n/a')})")
        for line in VERDICT_MEANINGS:
            click.echo(f"              {line}")
        two_way = f"-t {threshold_text(d['two_way_threshold'])} gives two verdicts at this threshold"
    else:
        two_way = "two verdicts: fake at or above, real below"
    click.echo(f"two-way:      {threshold_text(d['two_way_threshold'])}  ({two_way}; "
               f"{d['training'].get('threshold_rule', 'n/a')})")
    # with a usable face expert, plain --faces uses its thresholds ("fused faces" below); the
    # network's own face-mode ones are those of --faces --no-face-expert
    fe = d.get("face_expert")
    # ("auto" leaves out an expert without verdicts of its own)
    faces = "--faces --no-face-expert" if fe and not fe.get("error") and fe.get("face_verdicts") else "--faces"
    if fv:
        click.echo(f"face mode:    fake when p_fake >= {fv['fake']:.6f}, real below {threshold_text(fv['real'])} for "
                   f"{faces} where a face was found  ({fv.get('rule', 'n/a')})")
    if d.get("face_threshold") is not None and fv:
        click.echo(f"face two-way: {threshold_text(d['face_threshold'])}  (the earlier face-mode threshold: "
                   f"-t {threshold_text(d['face_threshold'])} {faces} gives two verdicts at it; "
                   f"{d['training'].get('face_threshold_rule', 'n/a')})")
    elif d.get("face_threshold") is not None:  # no face-mode verdicts: --faces gives two, at it
        click.echo(f"face mode:    threshold {threshold_text(d['face_threshold'])} for {faces}  "
                   f"({d['training'].get('face_threshold_rule', 'n/a')})")
    if fe and fe.get("error"):
        click.echo(f"face expert:  {fe['weights']} cannot be used: {fe['error']}")
    elif fe:
        click.echo(f"face expert:  --faces fuses each face's score with {fe['weights']} (weight "
                   f"{fe['weight']:g}); --no-face-expert: the network alone")
        click.echo(f"              learnt from: {fe['trained_on']}")
        if fe.get("image_score"):
            click.echo(f"              an image's score in --faces: {fe['image_score']}")
        fv = fe["face_verdicts"]
        if fv:
            click.echo(f"fused faces:  fake when p_fake >= {fv['fake']:.6f}, "
                       f"real below {threshold_text(fv['real'])} for "
                       f"--faces where a face was found  ({fv.get('rule', 'n/a')})")
    # what follows comes from the file's free-form metadata: a field of the wrong type is shown
    # as "-" (or left out), never a traceback
    ev = _dict(d.get("evaluation"))
    wrong = _dict(ev.get("verdicts_test"))
    if wrong:
        click.echo("verdicts on the test splits (share of the set's real or fake images; "
                   "real->fake and fake->real are errors):")
        click.echo(f"  {'set':<22} {'real->fake':>10} {'real->unc.':>10} {'real->real':>10} "
                   f"{'fake->real':>10} {'fake->unc.':>10} {'fake->fake':>10}")
        for name, r in wrong.items():  # each side's three shares add up to 1
            rr, ff = _dict(_dict(r).get("real")), _dict(_dict(r).get("fake"))
            click.echo(f"  {name:<22} {_f(rr.get('fake'), 10)} {_f(rr.get('uncertain'), 10)} {_f(rr.get('real'), 10)} "
                       f"{_f(ff.get('real'), 10)} {_f(ff.get('uncertain'), 10)} {_f(ff.get('fake'), 10)}")
    click.echo(f"temperature:  {d['temperature']:.4f}")
    tr = _dict(d.get("training"))
    sets = tr.get("train_sets")
    click.echo(f"trained on:   {', '.join(map(str, sets)) if isinstance(sets, list) and sets else 'n/a'}")
    if tr.get("steps"):
        secs = tr.get("train_seconds")
        took = f", {secs / 60:.0f} min" if isinstance(secs, (int, float)) and secs else ""
        click.echo(f"training:     {tr.get('steps')} steps x {tr.get('batch_size')} images, seed {tr.get('seed')}"
                   f"{took} ({tr.get('script', '')})")
    parent = _dict(tr.get("continued_from"))
    if parent:  # a warm restart: these weights began as another run's
        sets = parent.get("train_sets")
        sets = f" on {', '.join(map(str, sets))}" if isinstance(sets, list) and sets else ""
        click.echo(f"continued:    from {parent.get('path')} (sha256 {str(parent.get('sha256'))[:12]}, "
                   f"{parent.get('steps')} steps{sets})")
    mix = _dict(tr.get("interpolated_with"))
    if mix and isinstance(mix.get("weight"), (int, float)):  # WiSE-FT: mixed with another checkpoint
        click.echo(f"interpolated: {1 - mix['weight']:.2f} of the trained weights + {mix['weight']:.2f} of "
                   f"{mix.get('path')} (sha256 {str(mix.get('sha256'))[:12]})")
    test = _dict(ev.get("test"))
    if "test_ece_uncalibrated" in ev and "all" in test:
        click.echo(f"calibration:  test ECE {_f(ev['test_ece_uncalibrated'], 0)} at T=1, "
                   f"{_f(_dict(test['all']).get('ece'), 0)} at T={d['temperature']:.3f}")
    if test:
        # the threshold the figures were counted at, stored with them (the two-way threshold of
        # the time, which a later recalibration may have moved)
        at = _dict(test.get("all")).get("threshold")
        at = at if isinstance(at, (int, float)) else d["two_way_threshold"]
        click.echo(f"evaluation (test splits, when trained; acc and FPR at the two-way threshold "
                   f"{threshold_text(at)}" + ("" if at == d["two_way_threshold"] else ", that of the time")
                   + "):")
        click.echo(f"  {'set':<22} {'n':>6} {'AUC':>7} {'TPR@5%FPR':>10} {'acc':>7} {'FPR':>7}")
        for name, r in test.items():
            r = _dict(r)
            n = r.get("n")
            click.echo(f"  {name:<22} {n if isinstance(n, int) else '-':>6} {_f(r.get('auc'))} "
                       f"{_f(r.get('tpr_at_5pct_fpr'), 10)}"
                       f" {_f(r.get('accuracy'))} {_f(r.get('fpr'))}")
    click.echo(f"weights:      {d['weights']}")
    click.echo(f"sha256:       {d['sha256']}")


def _face_expert(sha256: str):
    """The shipped face expert, when it was made for the weights of ``sha256``: its file,
    weight and fused face verdicts (or the reason it cannot be read); else None."""
    from fakedet.model import expert as fx

    path = fx.default_expert_path()
    if not path.is_file():
        return None
    try:
        m = fx.read_meta(path)
    except fx.ExpertError as exc:
        return {"weights": str(path), "error": str(exc)}
    if m.network_sha256 != sha256:
        return None  # made for the shipped network; --faces with these weights scores faces alone
    if m.face_verdicts is None:
        return None  # not calibrated: --faces leaves it out, as the detector does (_load_expert)
    return {"weights": str(path), **m.describe()}


def _face_mode(d: dict):
    """The thresholds ``scan --faces`` uses where a face was found, in one place: those of the
    face expert's fused score when the expert is used (``face_verdicts`` at the top level are the
    network's own, for ``--faces --no-face-expert``); images without a face get ``verdicts``."""
    cut, fe = _dict(d.get("cutoffs")).get("face"), d.get("face_expert")
    # the network's own, as the detector reads them (face_verdicts, else the face or plain threshold)
    network = {"fake": cut[0], "real": cut[1]} if isinstance(cut, (list, tuple)) and len(cut) == 2 else None
    fused = fe.get("face_verdicts") if isinstance(fe, dict) and not fe.get("error") else None
    if isinstance(fused, dict):
        return {"fake": fused["fake"], "real": fused["real"], "with_face_expert": True,
                "no_face_expert": network, "images_without_a_face": "verdicts"}
    if network is not None:
        return {**network, "with_face_expert": False, "images_without_a_face": "verdicts"}
    return None


VERDICT_MEANINGS = (
    "fake: the model found evidence of manipulation or generation",
    "uncertain: the score lies where real photos of some sources also fall (most fakes too)",
    "real: no evidence found (not proof that the image is genuine)",
)


def in_short_of(d: dict, where: str = "listed below") -> list[str]:
    """:func:`in_short` for a checkpoint's description (``checkpoint.describe``, or any dict with
    its ``evaluation`` and ``training``)."""
    return in_short(_dict(_dict(d.get("evaluation")).get("verdicts_test")), _dict(d.get("training")).get("train_sets"),
                    where)


def in_short(shares: dict, trained_on=None, where: str = "listed below") -> list[str]:
    """Plain-words lines for a reader who is not a specialist: how many real and fake test images
    got each verdict, counted from the per-set shares (``evaluation.verdicts_test``) and the
    sets' image counts, pooled over the sets (``trained_on``: the sets the weights trained on,
    to say how many of those are; ``where``: where the sets are listed). Empty when the metadata
    has no such counts; each conclusion is said only where the counts bear it out."""
    counts, caught = {"real": {}, "fake": {}}, []
    for name, r in shares.items():
        r = _dict(r)
        for cls in ("real", "fake"):
            n, got = r.get(f"n_{cls}"), _dict(r.get(cls))
            if isinstance(n, bool) or not isinstance(n, int) or n <= 0 or not got:
                continue
            for verdict in ("fake", "uncertain", "real"):
                share = got.get(verdict)
                if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
                    return []  # not shares: say nothing rather than something wrong
                counts[cls][verdict] = counts[cls].get(verdict, 0) + round(share * n)
            counts[cls]["n"] = counts[cls].get("n", 0) + n
            if cls == "fake":
                caught.append((got["fake"], str(name)))
    real, fake = counts["real"], counts["fake"]
    if not real.get("n") or not fake.get("n"):
        return []
    def sets_at(share):
        return " and ".join(name for s, name in sorted(caught) if s == share)

    low, high = min(caught)[0], max(caught)[0]
    spread = [f"                                         by set from {100 * low:.1f}% ({sets_at(low)})",
              f"                                         to {100 * high:.1f}% ({sets_at(high)})"]
    n_all = real["n"] + fake["n"]
    trained = [n for n in shares if isinstance(trained_on, list) and n in trained_on]
    sets = f"{len(shares)} sets {where}, {len(trained)} of them trained on" if trained_on else f"sets {where}"
    unc = real["uncertain"] + fake["uncertain"]
    n_real_label = real["real"] + fake["real"]
    return [
        f"in short:     counted on the test images of the {sets}; photos from",
        "              other sources can fare worse (the model card, weights/MODEL_CARD.md in the source,",
        "              has the shipped weights' figures on unseen sources)",
        f"              real photos labelled fake: {real['fake']:,} of {real['n']:,}",
        f"              fakes labelled fake:       {fake['fake']:,} of {fake['n']:,}, the rest missed",
        *(spread if low < high else []),
        f"              labelled uncertain:        {unc:,} of {n_all:,}"
        + (", real and fake alike: uncertain is the usual verdict" if 2 * unc > n_all else ""),
        f"              labelled real:             {n_real_label:,} images, of which {fake['real']:,} fakes"
        + (": real proves nothing" if fake["real"] else ""),
    ]


def _f(x, width: int = 7) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or x != x:
        return f"{'-':>{width}}"
    return f"{x:>{width}.4f}"


def _tame(x, depth: int = 0):
    """The description with what its free-form metadata could hold and no output can take made
    harmless: an integer too large for a float (400 digits) as None, text with a lone surrogate
    as valid UTF-8 (``\\udXXX``), nesting deeper than 40 levels cut off (None)."""
    from fakedet.data.writers import utf8_text

    if depth > 40:
        return None
    if isinstance(x, dict):
        return {utf8_text(k) if isinstance(k, str) else k: _tame(v, depth + 1) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_tame(v, depth + 1) for v in x]
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) > 2 ** 63:
        return None
    return utf8_text(x) if isinstance(x, str) else x


def _dict(x) -> dict:
    """``x`` when it is a dict, else an empty one (a metadata field of the wrong type)."""
    return x if isinstance(x, dict) else {}
