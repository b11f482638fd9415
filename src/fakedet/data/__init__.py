"""Data layer (1, the lowest): input sources, decoding and preprocessing, labelled sets, record writers.

It imports no other layer of the package, and nothing in it imports torch.
"""
