#!/usr/bin/env python
"""Train the fused fakedet model on the labelled sets (fakedet.training; the recipe in configs/).

    python experiments/train.py --config configs/base.json --out runs/default
    python experiments/train.py --config configs/base.json --out runs/default   # resumes
    python experiments/train.py --config configs/ablation/all.json --seed 1     # runs/ablation-all_seed1
    python experiments/train.py --config configs/base.json --set train.steps=2 --set train.workers=0 \\
        --out /tmp/smoke                                                         # a smoke run
    python experiments/train.py --config configs/ablation/all_swa.json --show   # the resolved recipe

A recipe file names the file it builds on (``"extends"``) and holds only what differs;
``--set KEY=VALUE`` (the value read as JSON, else as a string) and ``--seed N`` come on top, and
an unknown key is an error. The run folder gets ``recipe.json`` (the resolved recipe, a complete
recipe file), ``train.log``, ``last.safetensors`` while training and ``final.safetensors`` (with
the calibration and the test figures) at the end; ``--eval-only`` recalibrates and evaluates the
last checkpoint without training. What each recipe key does: src/fakedet/training/recipe.py.
Needs the ``train`` extra for the ImageNet initialisation (``pip install -e .[train]``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from fakedet.data.sets import data_root
from fakedet.training import RecipeError, TrainingError, resolve, train


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="JSON recipe in configs/")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="override a recipe key, e.g. train.steps=100 or data.train_sets='[\"lfw_faceswap\"]' "
                         "(repeatable)")
    ap.add_argument("--seed", type=int, help="the run's seed; another than the recipe's adds _seedN to the run's name")
    ap.add_argument("--data", default=str(data_root()),
                    help="folder of the sets  [default: $FAKEDET_DATA or ../shared/data]")
    ap.add_argument("--out", help="run folder (checkpoints, log)  [default: runs/<recipe name>]")
    ap.add_argument("--eval-only", action="store_true", help="skip training; calibrate and evaluate last checkpoint")
    ap.add_argument("--show", action="store_true", help="print the resolved recipe and exit")
    args = ap.parse_args(argv)

    try:
        recipe = resolve(args.config, args.sets, args.seed)
        if args.show:
            print(json.dumps(recipe.to_dict(), indent=2))
            return 0
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
        train(recipe, args.data, args.out or Path("runs") / recipe.name, eval_only=args.eval_only)
    except (RecipeError, TrainingError) as exc:
        raise SystemExit(f"train.py: {exc}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
