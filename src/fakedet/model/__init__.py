"""The model: config, fused detector, backbones, checkpoints, face detector."""
