#!/usr/bin/env python
"""Face-expert runs compared on one FaceForensics++ method held out of them and of the network:
docs/decisions/2026-12-04-mouth-and-lower-face-self-blends.md.

    python experiments/recipe_probe.py --method Face2Face --network runs/trust/lomo_h6_face2face/final.safetensors \\
        --box-map runs/fe_g_noface2face_lomo_face2face.safetensors \\
        --runs runs/cont_face2face_self runs/cont_face2face_parts

Each ``sbi_expert.py train`` run folder becomes an expert file paired with ``--network`` (the
box map from ``--box-map``, as ``face_expert.py export`` takes it), and is scored as
``mirror_eval.py`` scores its candidate 0: face mode, the expert's weight 0.7, the fusion's norms
read on the expert's reference reals (the real val images of its training sets, largest face).
Reported per run: the AUC of the method's train and val fakes against ffpp_faces' real val faces
(no test image is read), and, for reading only, the same with the expert's logits averaged over
each face square and its mirror (candidate E).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors.torch import load_file

from fakedet import Detector
from fakedet.data.labelled import read_manifest
from fakedet.data.sets import manifest
from fakedet.model import checkpoint
from fakedet.model import expert as fx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_expert import _auc, read_box_map  # noqa: E402
from mirror_eval import WEIGHT, scores  # noqa: E402


def heldout_images(method: str) -> tuple[list[str], np.ndarray]:
    """ffpp_faces' real val faces, then ``method``'s train and val fakes; their labels."""
    ims = read_manifest(manifest("ffpp_faces"))
    method_of = [im.group.split("-")[2] if im.group.count("-") >= 3 else im.group for im in ims]
    reals = [im.path for im in ims if im.label == 0 and im.split == "val"]
    held = [im.path for im, m in zip(ims, method_of) if im.label == 1 and m == method and im.split in ("train", "val")]
    if not held:
        sys.exit(f"no {method} fakes in ffpp_faces")
    return reals + held, np.r_[np.zeros(len(reals)), np.ones(len(held))]


def expert_file(run: Path, network: Path, box_map_from: str | None, out: Path) -> Path:
    """The run's expert as a file paired with ``network`` (identity norms: ``scores`` reads its own)."""
    state = json.loads((run / "state.json").read_text())
    box_map = read_box_map(run, box_map_from)
    training = {"recipe": state.get("recipe", "self"), "real_sets": list(state["train_sets"]),
                "genuine_fakes": list(state.get("genuine") or []), "left_out": state.get("leave_out"),
                "steps": int(state["step"])}
    meta = fx.ExpertMeta(size=int(state["size"]), weight=WEIGHT, norm_expert=(0.0, 1.0), norm_network=(0.0, 1.0),
                         box_map={k: box_map[k] for k in ("ratio", "dx", "dy")},
                         network_sha256=checkpoint.sha256(network), training=training)
    fx.save(out, load_file(str(run / "expert.safetensors")), meta)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", required=True, help="Deepfakes, FaceSwap, Face2Face or NeuralTextures")
    ap.add_argument("--network", required=True, help="a network trained without --method")
    ap.add_argument("--runs", nargs="+", required=True, help="sbi_expert.py run folders, each trained without it")
    ap.add_argument("--box-map", default=None, help="as face_expert.py export --box-map")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    paths, y = heldout_images(args.method)
    network = Path(args.network)
    res = {"method": args.method, "network": str(network), "n_fake": int(y.sum()), "n_real": int((y == 0).sum()),
           "weight": WEIGHT, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for run in map(Path, args.runs):
            state = json.loads((run / "state.json").read_text())
            if state.get("leave_out") != args.method:
                sys.exit(f"{run} was not trained without {args.method} (leave_out: {state.get('leave_out')})")
            f = expert_file(run, network, args.box_map, Path(tmp) / f"{run.name}.safetensors")
            det = Detector.load(network, device="cpu", faces=True, expert=f)
            s = scores(det, paths)
            res["runs"][str(run)] = {"recipe": state.get("recipe", "self"), "steps": state["step"],
                                     "auc": _auc(s["0"][y == 0], s["0"][y == 1]),
                                     "auc_mirrored_expert": _auc(s["E"][y == 0], s["E"][y == 1])}
            print(f"{run}: {json.dumps(res['runs'][str(run)])}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
