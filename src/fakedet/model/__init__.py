"""Model layer (2, above data): config, fused detector, backbones, checkpoints, face detector."""
