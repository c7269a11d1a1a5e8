"""Results: the one schema of every ``eval/...`` key, results.json / run.json on disk, and the
tables and figures of one run or many. Nothing here imports Lightning."""
