"""Speed benchmarks (run as scripts: python bench/<name>.py); shared helpers live here too."""
import mxssd_compat  # noqa: F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
