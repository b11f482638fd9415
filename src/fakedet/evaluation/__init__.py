"""Evaluation: metrics and reports over labelled data."""
