"""minitext: seven real text tasks from packages, on the pretrained all-MiniLM-L6-v2."""
