"""Training layer (4, above inference and evaluation): recipes, sets, augmentation, pseudo-fakes, averaging, the loop.

    recipe.py     the recipe files (a base plus small overrides), ``--set``/``--seed``, validation
    datasets.py   manifest rows to items, pseudo-fake copies, balanced sampling, torch Datasets
    augment.py    the augmentations, drawn alike for both classes; the native-resolution crop
    selfblend.py  self-blended pseudo-fakes (two versions)
    decoders.py   decoder-trace pseudo-fakes and the small autoencoders that make them
    domain.py     the class-conditional domain adversary
    averaging.py  weight averaging and BatchNorm recomputation
    evaluate.py   scoring a model on sets' splits; temperature and threshold calibration
    loop.py       one run: initialisation, the loop, calibration, the final checkpoint

``experiments/train.py`` is the command line over :func:`resolve` and :func:`train`. A new
training trick goes in a module of its own here, with its recipe key in ``recipe.Train``.
This package may use fakedet.data, fakedet.model, fakedet.evaluation and
fakedet.inference.alloc; nothing outside experiments/ and tests imports it.
"""

from fakedet.training.loop import TrainingError, train
from fakedet.training.recipe import Recipe, RecipeError, resolve

__all__ = ["Recipe", "RecipeError", "TrainingError", "resolve", "train"]
