"""Inference: the Detector, the decode pipeline, the GPU decoder, device and thread policy."""
