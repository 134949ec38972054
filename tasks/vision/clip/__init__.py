"""CLIP vision suites (vit8, vit14, vit20): task-arithmetic protocol on hub checkpoints."""
