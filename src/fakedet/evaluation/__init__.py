"""Evaluation layer (3, beside inference, which it does not import): metrics and reports over labelled data."""
