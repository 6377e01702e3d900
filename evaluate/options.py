"""Turning command-line values into what ``evaluate_net`` takes."""
import mxnet as mx


def parse_data_shape(text):
    """'300' -> 300; '256,320' (height,width) -> (256, 320)."""
    try:
        sides = [int(s) for s in str(text).replace('x', ',').split(',') if s.strip()]
    except ValueError:
        sides = []
    if len(sides) not in (1, 2) or min(sides) <= 0:
        raise ValueError('data shape must be "S" or "H,W" with positive integers, got %r' % text)
    return sides[0] if len(sides) == 1 or sides[0] == sides[1] else tuple(sides)


def contexts(gpus=None, cpu=False):
    """Devices to run on: the CPU if asked, the listed GPUs ('0,1'), or by default GPU 0 when
    MXNet sees one and the CPU otherwise."""
    if cpu:
        return [mx.cpu()]
    if gpus is None or not str(gpus).strip():
        if gpus is None and mx.context.num_gpus() > 0:
            return [mx.gpu(0)]
        return [mx.cpu()]
    try:
        ids = [int(g) for g in str(gpus).split(',') if g.strip()]
    except ValueError:
        raise ValueError('--gpus must be a comma-separated list of GPU ids, got %r' % gpus)
    available = mx.context.num_gpus()
    missing = [i for i in ids if i >= available]
    if missing:
        raise ValueError('GPU %s requested but MXNet sees %d GPU(s); use --cpu'
                         % (','.join(map(str, missing)), available))
    return [mx.gpu(i) for i in ids]


def resolve_metric(metric, voc07):
    """--metric wins; --voc07/--no-voc07 (the original flag) picks between the two VOC
    metrics when --metric is not given, and must not contradict it when it is."""
    if metric is None:
        return 'voc' if voc07 is False else 'voc07'
    if voc07 is not None and (metric == 'voc07') != voc07:
        raise ValueError('--metric %s contradicts --%svoc07' % (metric, '' if voc07 else 'no-'))
    return metric
