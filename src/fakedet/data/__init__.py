"""Data layer (1, the lowest): input sources, decoding and preprocessing, labelled sets, record writers.

It imports no other layer of the package, and nothing in it imports torch. A new input type
(a source of paths or bytes) goes in :mod:`~fakedet.data.sources`, a new image format in
:mod:`~fakedet.data.decode`, a new record format in :mod:`~fakedet.data.writers`.
"""
