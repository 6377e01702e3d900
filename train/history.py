"""Per-epoch training record (``<prefix>-history.json``) and its plot (``<prefix>-curves.png``):
training losses and validation mAP against the epoch, rewritten after every epoch.

A resumed run keeps the epochs before the one it resumes from, so the curves of a run that
was killed and resumed look like those of an uninterrupted one.
"""
import json
import os

from .checkpoint import atomic_write

LOSS_CURVES = ('CrossEntropy', 'SmoothL1')
MAP_CURVE = 'mAP'


def history_path(prefix):
    return '%s-history.json' % prefix


def curves_path(prefix):
    return '%s-curves.png' % prefix


class TrainingHistory:
    """One dict per finished epoch: ``epoch`` (1-based count of finished epochs), the losses,
    ``mAP`` (absent without validation), ``lr``, ``seconds``, ``images_per_second``."""

    def __init__(self, prefix, begin_epoch=0):
        self.prefix = prefix
        self.epochs = [e for e in self._read() if e['epoch'] <= begin_epoch]

    def _read(self):
        try:
            with open(history_path(self.prefix)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return []

    def add(self, record):
        self.epochs.append(dict(record))
        self.save()

    def save(self):
        text = json.dumps(self.epochs, indent=1)

        def write(path):
            with open(path, 'w') as f:
                f.write(text)
        atomic_write(history_path(self.prefix), write)
        atomic_write(curves_path(self.prefix), self.plot)

    def plot(self, path):
        # The object-oriented API (no pyplot): no global figure state, and several times
        # faster per call, which matters when it runs after every epoch.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        epochs = [e['epoch'] for e in self.epochs]
        fig = Figure(figsize=(10, 4), dpi=80)
        FigureCanvasAgg(fig)
        loss_ax, map_ax = fig.subplots(1, 2)
        for name in LOSS_CURVES:
            loss_ax.plot(epochs, [e.get(name, float('nan')) for e in self.epochs], 'o-',
                         markersize=3, label=name)
        loss_ax.set(xlabel='epoch', ylabel='training loss (per anchor)', title='losses')
        loss_ax.legend()
        validated = [e for e in self.epochs if MAP_CURVE in e]
        map_ax.plot([e['epoch'] for e in validated], [e[MAP_CURVE] for e in validated], 'o-',
                    markersize=3, color='tab:green')
        map_ax.set(xlabel='epoch', ylabel='validation mAP', title='validation mAP', ylim=(0, 1))
        for ax in (loss_ax, map_ax):
            ax.grid(alpha=0.3)
        fig.suptitle(os.path.basename(self.prefix))
        fig.savefig(path, format='png')
