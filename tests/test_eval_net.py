"""evaluate.py / evaluate_net end to end on a prepared synthetic .rec with a freshly
initialised mobilenet_0.25 SSD, checked against a forward pass and AP oracle of its own."""
import json
import os
import runpy
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from test_eval_metric import oracle_ap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORK, SHAPE, BATCH, NUM_VAL = 'mobilenet_0.25', 128, 4, 10


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    from dataset.synthetic import prepare
    from symbol.symbol_factory import get_symbol
    work = tmp_path_factory.mktemp('eval_net')
    data = prepare(str(work / 'synthetic'), num_train=2, num_val=NUM_VAL, seed=0,
                   data_shape=SHAPE, progress=False)
    symbol = get_symbol(NETWORK, SHAPE, len(data['class_names']))
    module = mx.mod.Module(symbol, label_names=None)
    module.bind([('data', (1, 3, SHAPE, SHAPE))], for_training=False)
    mx.random.seed(0)
    # He init: varied scores and boxes (MXNet's default Xavier leaves this untrained net's
    # outputs constant, which would make every comparison below trivially equal)
    module.init_params(mx.init.Xavier('gaussian', 'in', 2))
    prefix = str(work / 'ssd')
    module.save_checkpoint(prefix, 0)   # the test symbol: also a valid deploy model
    return dict(data, prefix=prefix, work=work)


def cli_args(setup, out_dir, *extra):
    return ['--rec-path', setup['val_rec'], '--network', NETWORK, '--data-shape', str(SHAPE),
            '--prefix', setup['prefix'], '--epoch', '0', '--num-class', '4',
            '--class-names', ','.join(setup['class_names']), '--batch-size', str(BATCH),
            '--cpu', '--output-dir', str(out_dir)] + list(extra)


def run_main(argv):
    return runpy.run_path(os.path.join(ROOT, 'evaluate.py'))['main'](argv)


def reference_detections(setup):
    """Detections of every val image by a plain forward pass, and the labels from the .lst."""
    from config.config import cfg
    from dataset.imdb import read_imglist
    from dataset.iterator import DetRecordIter
    symbol, args, auxs = mx.model.load_checkpoint(setup['prefix'], 0)
    it = DetRecordIter(setup['val_rec'], 1, SHAPE, **dict(cfg.valid, round_batch=False))
    module = mx.mod.Module(symbol, label_names=None)
    module.bind(it.provide_data, for_training=False)
    module.set_params(args, auxs)
    dets = []
    for batch in it:
        module.forward(batch, is_train=False)
        out = module.get_outputs()[0].asnumpy()[0]
        dets.append([list(row) for row in out[out[:, 0] >= 0]])
    labels = [[list(row) for row in label] for _, label, _ in read_imglist(setup['val_lst'])]
    return labels, dets


def test_cli_writes_results_and_plots_matching_an_oracle(setup):
    out = setup['work'] / 'cli'
    proc = subprocess.run([sys.executable, 'evaluate.py'] + cli_args(
        setup, out, '--no-voc07', '--overlap', '0.1'), cwd=ROOT, capture_output=True,
        text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS='2'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'mAP' in proc.stdout and 'circle' in proc.stdout
    results = json.loads((out / 'results.json').read_text())
    assert results['metric'] == 'voc'
    assert results['data']['num_images'] == NUM_VAL          # the padded last batch counted once
    assert results['data']['num_batches'] == 3
    labels, dets = reference_detections(setup)
    assert sum(len(d) for d in dets) > 100
    # a low IoU threshold gives the untrained net some hits in every class
    expected = [oracle_ap(labels, dets, c, 0.1, False, False) for c in range(4)]
    assert min(expected) > 0
    got = [results['per_class_ap'][name] for name in setup['class_names']]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert 0 < results['summary']['mAP'] == pytest.approx(np.mean(expected))
    pngs = sorted(p for p in os.listdir(out) if p.endswith('.png'))
    assert pngs == ['ap_per_class.png'] + ['pr_%s.png' % n for n in sorted(setup['class_names'])]
    for name in pngs:
        with open(out / name, 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_deploy_symbol_and_batching_give_the_same_numbers(setup):
    built = run_main(cli_args(setup, setup['work'] / 'built', '--overlap', '0.3'))
    deploy = run_main(cli_args(setup, setup['work'] / 'deploy', '--overlap', '0.3', '--deploy',
                               '--batch-size', '3'))
    assert deploy['model']['network'] == 'deploy symbol'
    assert deploy['data']['num_images'] == built['data']['num_images'] == NUM_VAL
    assert deploy['per_class_ap'] == pytest.approx(built['per_class_ap'])
    assert built['metric'] == 'voc07' and built['summary']['mAP'] > 0


def test_num_batch_limits_the_images(setup):
    results = run_main(cli_args(setup, setup['work'] / 'partial', '--num-batch', '2'))
    assert results['data']['num_images'] == 2 * BATCH
    assert results['data']['num_batches'] == 2


def test_coco_metric_on_the_list_file(setup):
    from evaluate.coco_metric import CocoMetric, coco_from_imglist
    out = setup['work'] / 'coco'
    image_root = os.path.join(setup['root'], 'JPEGImages')
    results = run_main(cli_args(setup, out, '--metric', 'coco', '--image-root', image_root))
    assert list(results['summary']) == ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl']
    assert 'Average Precision' in results['coco_summary']
    labels, dets = reference_detections(setup)
    metric = CocoMetric(coco_from_imglist(setup['val_lst'], image_root, setup['class_names']),
                        list(range(NUM_VAL)), setup['class_names'])
    rows = max(len(d) for d in dets)
    batch = -np.ones((NUM_VAL, rows, 6), np.float32)
    for i, d in enumerate(dets):
        batch[i, :len(d)] = d
    metric.update([None], [batch])
    assert results['summary'] == pytest.approx(metric.stats(), abs=1e-6)
    assert (out / 'ap_per_class.png').is_file()


def test_mean_pixels_and_whole_last_batch_reach_the_iterator(setup, monkeypatch):
    import dataset.iterator
    from evaluate.evaluate_net import evaluate_net
    seen = {}
    real_iter = dataset.iterator.DetRecordIter

    def recording_iter(*args, **kwargs):
        seen.update(kwargs)
        return real_iter(*args, **kwargs)
    monkeypatch.setattr(dataset.iterator, 'DetRecordIter', recording_iter)
    results = evaluate_net(NETWORK, setup['val_rec'], 4, (10, 20, 30), SHAPE, setup['prefix'], 0,
                           batch_size=BATCH, num_batch=1)
    assert seen['mean_pixels'] == (10, 20, 30)
    assert seen['round_batch'] is False and seen['rand_mirror_prob'] == 0
    assert results['data']['num_images'] == BATCH and 'files' not in results


def test_model_that_does_not_fit_is_reported(setup):
    from evaluate.evaluate_net import EvaluationError, evaluate_net
    from symbol.model_io import ModelError
    with pytest.raises(ModelError, match=r'ssd-0000.params does not fit the network .*'
                                         r'check --network, --data-shape, --num-class'):
        evaluate_net(NETWORK, setup['val_rec'], 5, (123, 117, 104), SHAPE, setup['prefix'], 0)
    with pytest.raises(ModelError, match=r'model file\(s\) not found: .*ssd-0007.params'):
        evaluate_net(NETWORK, setup['val_rec'], 4, (123, 117, 104), SHAPE, setup['prefix'], 7)
    with pytest.raises(EvaluationError, match='3 class names given for 4 classes'):
        evaluate_net(NETWORK, setup['val_rec'], 4, (123, 117, 104), SHAPE, setup['prefix'], 0,
                     class_names=['a', 'b', 'c'])


# ------------------------------------------------------------------------- option parsing

def test_metric_flags():
    from evaluate.options import resolve_metric
    assert resolve_metric(None, None) == 'voc07'
    assert resolve_metric(None, False) == 'voc'
    assert resolve_metric('coco', False) == 'coco'
    with pytest.raises(ValueError, match='--metric voc contradicts --voc07'):
        resolve_metric('voc', True)


def test_cli_booleans_and_shapes(setup):
    parse = runpy.run_path(os.path.join(ROOT, 'evaluate.py'))['parse_args']
    args = parse(['--force-nms', '--no-use-difficult', '--no-voc07', '--data-shape', '256,320',
                  '--cpu'])
    assert args.force_nms is True and args.use_difficult is False
    assert args.metric == 'voc' and args.data_shape == (256, 320)
    assert args.ctx == [mx.cpu()] and args.num_batch is None
    defaults = parse([])
    # None: from the model spec, else the project default
    assert defaults.force_nms is None and defaults.deploy is False and defaults.metric == 'voc07'
    with pytest.raises(SystemExit):
        parse(['--metric', 'voc', '--voc07'])
    with pytest.raises(SystemExit):
        parse(['--data-shape', 'big'])


def test_prefix_and_device_rules():
    from config.cli import contexts
    from config.cli import data_shape as parse_data_shape
    from symbol.model_io import expand_prefix
    assert expand_prefix('model/ssd_', 'resnet50', 512) == 'model/ssd_resnet50_512'
    assert expand_prefix('model/ssd_', 'resnet50', (256, 320)) == 'model/ssd_resnet50_256x320'
    assert expand_prefix('model/deploy_ssd', 'resnet50', 512) == 'model/deploy_ssd'
    assert parse_data_shape('300,300') == 300
    assert contexts('', False) == [mx.cpu()]
    if mx.context.num_gpus() == 0:
        assert contexts(None, False) == [mx.cpu()]
        with pytest.raises(ValueError, match='GPU 0 requested but MXNet sees 0 GPU'):
            contexts('0', False)
