"""Human-facing output of an evaluation: the per-class AP table, the results JSON, one
precision-recall plot per class and a bar chart of per-class AP."""
import json
import math
import os
import re

PLOT_STYLE = {
    'figure_size': (6.0, 4.5),
    'bar_height_per_class': 0.3,
    'dpi': 100,
    'pr_color': 'tab:blue',
    'bar_color': 'tab:green',
    'mean_color': 'tab:red',
}


def _pyplot():
    # Agg: plots are files, there may be no display (CI, servers)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def safe_file_stem(name):
    """A class name made safe as part of a file name ('potted plant/x' -> 'potted_plant_x')."""
    stem = re.sub(r'[^A-Za-z0-9_.-]+', '_', str(name)).strip('_.')
    return stem or 'unnamed'


def format_ap_table(per_class, summary):
    """Per-class AP table with the summary values (mAP, or the COCO numbers) below it."""
    width = max([len(str(n)) for n in list(per_class) + list(summary)] + [5])
    rule = '-' * (width + 10)
    lines = [rule, '%-*s  %7s' % (width, 'class', 'AP'), rule]
    lines += ['%-*s  %7s' % (width, name, _format_value(ap)) for name, ap in per_class.items()]
    lines.append(rule)
    lines += ['%-*s  %7s' % (width, name, _format_value(v)) for name, v in summary.items()]
    lines.append(rule)
    return '\n'.join(lines)


def _format_value(value):
    return 'n/a' if value is None or math.isnan(value) else '%.4f' % value


def write_results_json(path, results):
    """JSON with NaN written as null (NaN is not valid JSON)."""
    with open(path, 'w') as f:
        json.dump(_nan_to_none(results), f, indent=2, sort_keys=False)
    return path


def _nan_to_none(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def save_pr_curves(curves, out_dir, aps=None):
    """One PNG per class, ``pr_<class>.png``: precision against recall.
    ``curves``: {name: (recall, precision)}; ``aps``: optional {name: AP} for the titles.
    Returns the written paths."""
    plt = _pyplot()
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, (recall, precision) in curves.items():
        fig, ax = plt.subplots(figsize=PLOT_STYLE['figure_size'])
        ax.plot(recall, precision, color=PLOT_STYLE['pr_color'])
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.05)
        ax.set_xlabel('recall')
        ax.set_ylabel('precision')
        ap = (aps or {}).get(name)
        ax.set_title('%s  (AP %s)' % (name, _format_value(ap)) if ap is not None else name)
        ax.grid(True, alpha=0.3)
        path = os.path.join(out_dir, 'pr_%s.png' % safe_file_stem(name))
        fig.savefig(path, dpi=PLOT_STYLE['dpi'], bbox_inches='tight')
        plt.close(fig)
        paths.append(path)
    return paths


def save_ap_bar_chart(per_class, path, mean_ap=None, title='AP per class'):
    """Horizontal bar chart of per-class AP (classes without data drawn as 0 and marked
    'n/a'), with the mean as a vertical line."""
    plt = _pyplot()
    names = list(per_class)
    values = [0.0 if ap is None or math.isnan(ap) else ap for ap in per_class.values()]
    height = max(PLOT_STYLE['figure_size'][1], PLOT_STYLE['bar_height_per_class'] * len(names))
    fig, ax = plt.subplots(figsize=(PLOT_STYLE['figure_size'][0], height))
    positions = range(len(names))
    ax.barh(positions, values, color=PLOT_STYLE['bar_color'])
    ax.set_yticks(list(positions))
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    for pos, ap in zip(positions, per_class.values()):
        ax.text(min(values[pos], 1.0) + 0.01, pos, _format_value(ap), va='center', fontsize=8)
    if mean_ap is not None and not math.isnan(mean_ap):
        ax.axvline(mean_ap, color=PLOT_STYLE['mean_color'], linestyle='--',
                   label='mean %.4f' % mean_ap)
        ax.legend(loc='lower right')
    ax.set_xlim(0.0, 1.1)
    ax.set_xlabel('AP')
    ax.set_title(title)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=PLOT_STYLE['dpi'], bbox_inches='tight')
    plt.close(fig)
    return path
