"""SSD training: ``train_net(TrainOptions(...))``, checkpoints, metrics (see README.md)."""
