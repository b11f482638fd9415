"""CLI layer: the options several commands share, as decorators, so each is declared once."""

from __future__ import annotations

import click


class DeviceType(click.ParamType):
    name = "DEVICE"

    def convert(self, value, param, ctx):
        v = str(value).strip().lower()
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        self.fail(f"{value!r} is not one of auto, cpu, cuda, cuda:N", param, ctx)


def weights_option(f):
    """-w/--weights: the checkpoint."""
    return click.option("-w", "--weights", type=click.Path(dir_okay=False), default=None,
                        help="A .safetensors checkpoint  [default: the shipped weights].")(f)


TWO_WAY_HELP = ("Two verdicts instead of three: 'fake' when p_fake >= P, else 'real'; for measuring the "
                "model, not for judging one photo (many real photos get 'fake', many fakes 'real')  "
                "[default: the checkpoint's fake / uncertain / real thresholds].")


def threshold_option(help: str):
    """-t/--threshold, with the command's own help text."""
    return click.option("-t", "--threshold", type=click.FloatRange(0.0, 1.0), default=None, help=help,
                        callback=_not_nan)


def _not_nan(ctx, param, value):
    if value is not None and value != value:  # FloatRange lets nan through: no comparison fails
        raise click.BadParameter("nan is not a threshold in [0, 1]")
    return value


#: -b's default, and with --faces (each image takes longer there: a batch of 32 kept the first
#: records, and those Ctrl-C keeps, waiting for seconds; the model runs 8 images at a time anyway)
BATCH, FACE_BATCH = 32, 8


def batch_for(batch_size, faces: bool) -> int:
    """-b as given, else its default for the mode."""
    return batch_size if batch_size is not None else FACE_BATCH if faces else BATCH


def run_options(f):
    """-d/--device, -b/--batch-size, -j/--workers: where and how the model runs."""
    for option in reversed((
        click.option("-d", "--device", type=DeviceType(), default="auto", show_default=True,
                     help="auto (GPU when present), cpu, cuda or cuda:N."),
        click.option("-b", "--batch-size", type=click.IntRange(min=1), default=None,
                     help="Images per batch (a scan writes each batch's records together)  [default: "
                          f"{BATCH}; {FACE_BATCH} with --faces, whose images take longer]."),
        click.option("-j", "--workers", type=click.IntRange(min=0), default=None,
                     help="Decoding threads (0 = decode in the main thread)  [default: CPU count, at most 8]."),
    )):
        f = option(f)
    return f


def progress_option(f):
    """--progress/--no-progress: a progress bar on stderr."""
    return click.option("--progress/--no-progress", default=None,
                        help="Progress bar on stderr  [default: on when stderr is a terminal].")(f)


def faces_option(help: str):
    """--faces, with the command's own help text."""
    return click.option("--faces", is_flag=True, help=help)


def face_expert_option(f):
    """--face-expert/--no-face-expert (the parameter ``face_expert``)."""
    return click.option(
        "--face-expert/--no-face-expert", "face_expert", default=True, show_default=True,
        help="With --faces: fuse each face's score with the shipped face expert (trained on real "
             "faces, self-blends of them and the face sets' fakes; what it learnt from and its weight "
             "in `fakedet info`) and label it by the fused score's thresholds; "
             "--no-face-expert scores faces by the network alone, with its own face thresholds.")(f)


def crop_option(f):
    """--crop/--no-crop (the parameter ``crop``)."""
    return click.option(
        "--crop/--no-crop", "crop", default=True, show_default=True,
        help="Score the picture inside plain margins, not the whole image: margins that take "
             "40 % of the image or more (a phone's screenshot of the app that showed it), and "
             "plain bands that run to the image's edges from 15 % of the image on (a border, a "
             "letterbox, padding, a meme's caption bands; on a phone-shaped image only bands both "
             "above and below the picture); and the picture of a story's screenshot where it is "
             "found on its blurred or gradient backdrop (often not once the screenshot was sent "
             "on as a JPEG, nor without the app's controls above and below: such a story is "
             "scored whole, and named as having wide margins where its backdrop can be told). Such margins "
             "brought fakes' scores down to real photos' and, on a dark app or a story's blurred "
             "backdrop, raised real photos' to fake. --no-crop scores every image whole.")(f)


def json_option(help: str):
    """--json (the parameter ``as_json``), with the command's own help text."""
    return click.option("--json", "as_json", is_flag=True, help=help)
