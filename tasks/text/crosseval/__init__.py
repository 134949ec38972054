"""crosseval: CrossEval's cross-capability prompts, a merged model's responses scored by a judge."""
