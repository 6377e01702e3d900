"""SSD training: ``train_net(TrainOptions(...))``, checkpoints, metrics (see README.md)."""
import mxssd_compat  # noqa: F401  (before MXNet: numpy aliases, Python 3.9 `symbol`)
