"""PNG figures of a dataset report: box shapes with the anchor shapes over them, anchor
coverage by object size, objects per class."""
import numpy as np

FIGURE_STYLE = {
    'figure_size': (6.4, 4.8),
    'dpi': 100,
    'box_color': 'tab:gray',
    'box_alpha': 0.25,
    'max_points': 20000,          # a random subset beyond that keeps the file small
    'layer_colors': 'tab10',
    'bar_color': 'tab:blue',
    'fitted_color': 'tab:orange',
}


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')  # figures are files; there may be no display
    import matplotlib.pyplot as plt
    return plt


def _save(plt, fig, path):
    fig.savefig(path, dpi=FIGURE_STYLE['dpi'], bbox_inches='tight')
    plt.close(fig)
    return path


def plot_box_shapes(path, width_px, height_px, anchor_shapes, data_shape, fitted_shapes=None):
    """Scatter of the objects' width x height in input pixels (log axes) with each layer's
    anchor shapes (`anchor_shapes`: [(layer name, (k, 2) widths, heights)]) drawn over it;
    `fitted_shapes` the same for fitted anchors, as hollow markers."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGURE_STYLE['figure_size'])
    if len(width_px) > FIGURE_STYLE['max_points']:
        keep = np.random.RandomState(0).choice(len(width_px), FIGURE_STYLE['max_points'],
                                               replace=False)
        width_px, height_px = width_px[keep], height_px[keep]
    ax.scatter(width_px, height_px, s=4, color=FIGURE_STYLE['box_color'],
               alpha=FIGURE_STYLE['box_alpha'], linewidths=0, label='objects')
    colors = plt.get_cmap(FIGURE_STYLE['layer_colors'])
    for k, (name, shapes) in enumerate(anchor_shapes):
        ax.scatter(shapes[:, 0], shapes[:, 1], s=40, marker='s', color=colors(k % 10),
                   label='anchors %s' % name)
    for k, (name, shapes) in enumerate(fitted_shapes or ()):
        ax.scatter(shapes[:, 0], shapes[:, 1], s=60, marker='o', facecolors='none',
                   edgecolors=colors(k % 10),
                   label='fitted anchors (colour of their layer)' if k == 0 else None)
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('box width (px at the %dx%d input)' % (data_shape[1], data_shape[0]))
    ax.set_ylabel('box height (px)')
    ax.set_title('object and anchor shapes')
    ax.legend(fontsize='x-small', loc='upper left', bbox_to_anchor=(1.02, 1), markerscale=0.8)
    ax.grid(True, which='both', alpha=0.3)
    return _save(plt, fig, path)


def plot_coverage_by_size(path, coverage, fitted=None):
    """Share of objects with a positive anchor per size bucket (bars), fitted anchors beside."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGURE_STYLE['figure_size'])
    names = [n for n, s in coverage['by_size'].items() if s['objects']]
    x = np.arange(len(names))
    series = [('preset', coverage, FIGURE_STYLE['bar_color'])]
    if fitted is not None:
        series.append(('fitted', fitted, FIGURE_STYLE['fitted_color']))
    width = 0.8 / len(series)
    for j, (label, report, color) in enumerate(series):
        covered = [1 - report['by_size'][n]['without_positive_fraction'] for n in names]
        overall = report['without_positive_fraction']
        bars = ax.bar(x + (j - (len(series) - 1) / 2) * width, covered, width, color=color,
                      label=label if overall is None else
                      '%s (%.1f%% overall)' % (label, 100 * (1 - overall)))
        for bar, name in zip(bars, names):
            ax.annotate('%d' % report['by_size'][name]['objects'], (bar.get_x() + width / 2, 0),
                        ha='center', va='bottom', fontsize='x-small', color='white')
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha='right')
    ax.set_ylim(0, 1.05)
    ax.set_ylabel('objects with a positive anchor (IoU > %g)' % coverage['threshold'])
    ax.set_xlabel('object size sqrt(w x h) at the input (count in the bars)')
    ax.set_title('anchor coverage by object size')
    ax.legend(fontsize='small')
    return _save(plt, fig, path)


def plot_class_histogram(path, objects_per_class):
    plt = _pyplot()
    names, counts = list(objects_per_class), list(objects_per_class.values())
    fig, ax = plt.subplots(figsize=(FIGURE_STYLE['figure_size'][0],
                                    max(2.0, 0.3 * len(names) + 1)))
    ax.barh(np.arange(len(names)), counts, color=FIGURE_STYLE['bar_color'])
    ax.set_yticks(np.arange(len(names)))
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlabel('objects')
    ax.set_title('objects per class')
    return _save(plt, fig, path)
