"""CLI layer: ``python -m fakedet``, the same as the ``fakedet`` command."""

from fakedet.cli import main

main()
