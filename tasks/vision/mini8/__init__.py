"""mini8: vit8's protocol at a size that builds offline on a 2-core CPU."""
