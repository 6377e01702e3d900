"""Speed benchmarks (run as scripts: python bench/<name>.py); shared helpers live here too."""
