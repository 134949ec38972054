"""Vision classification suites: backbone + frozen head per task, top-1 accuracy."""
