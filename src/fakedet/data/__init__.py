"""Data: input sources, decoding and preprocessing, labelled sets, record writers."""
