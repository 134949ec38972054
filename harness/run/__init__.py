"""One run and its record: runner, hyperparameter selection, records and their schema,
provenance (versions, device, peak memory)."""
