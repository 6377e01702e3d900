"""Turning command-line values into what ``evaluate_net`` takes (the shared flags and their
parsers live in ``config.cli``)."""


def resolve_metric(metric, voc07):
    """--metric wins; --voc07/--no-voc07 (the original flag) picks between the two VOC
    metrics when --metric is not given, and must not contradict it when it is."""
    if metric is None:
        return 'voc' if voc07 is False else 'voc07'
    if voc07 is not None and (metric == 'voc07') != voc07:
        raise ValueError('--metric %s contradicts --%svoc07' % (metric, '' if voc07 else 'no-'))
    return metric
