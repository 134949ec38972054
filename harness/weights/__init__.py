"""Checkpoints: the streaming expert pool, hub and mirror resolution, snapshot identities,
conversion of pickled checkpoints to safetensors."""
