"""Distributed training through MXNet's parameter server (ps-lite), all on 127.0.0.1:
tools/launch.py starts a scheduler, 1 server and 2 workers running train.py with
--kv-store dist_sync; each worker trains on its half of the record file."""
import os
import re
import subprocess
import sys

import pytest

from dataset import synthetic
from train import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_SHAPE = 64
NUM_TRAIN, BATCH = 64, 8
DIGEST = re.compile(r'worker (\d) of 2: learned-parameter digest ([0-9a-f]{40})')
SPEED_LINE = re.compile(r'Training mobilenet_0.25 on 64 images per epoch \((\d+) batches of 8 '
                        r'per worker, 2 worker\(s\)\)')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return synthetic.prepare(str(tmp_path_factory.mktemp('synthetic')), num_train=NUM_TRAIN,
                             num_val=16, seed=5, data_shape=DATA_SHAPE, progress=False)


def launch(data, prefix, log_dir, *launcher_args):
    command = [sys.executable, os.path.join(ROOT, 'tools', 'launch.py'), '-n', '2', '-s', '1',
               '--log-dir', str(log_dir), '--timeout', '240'] + list(launcher_args) + [
        '--', sys.executable, os.path.join(ROOT, 'train.py'), '--network', 'mobilenet_0.25',
        '--train-path', data['train_rec'], '--val-path', data['val_rec'], '--num-class', '4',
        '--class-names', 'synthetic', '--data-shape', str(DATA_SHAPE), '--batch-size',
        str(BATCH), '--label-width', str(data['label_width']), '--pretrained', '', '--cpu',
        '--end-epoch', '1', '--lr', '0.01', '--prefix', str(prefix), '--kv-store', 'dist_sync',
        '--frequent', '1']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def read_logs(log_dir):
    logs = {}
    for name in sorted(os.listdir(log_dir)):
        with open(os.path.join(log_dir, name)) as f:
            logs[name[:-len('.log')]] = f.read()
    return logs


def test_dist_sync_two_workers_end_with_identical_parameters(data, tmp_path):
    prefix = tmp_path / 'run' / 'ssd'
    result = launch(data, prefix, tmp_path / 'logs')
    logs = read_logs(tmp_path / 'logs')
    assert result.returncode == 0, result.stderr + '\n'.join(logs.values())
    assert sorted(logs) == ['scheduler', 'server0', 'worker0', 'worker1']
    digests = {}
    for name in ('worker0', 'worker1'):
        found = DIGEST.findall(logs[name])
        assert len(found) == 1, logs[name]
        digests[found[0][0]] = found[0][1]
        # each worker trains on its own half: 32 images = 4 batches of 8
        assert SPEED_LINE.search(logs[name]).group(1) == '4'
        assert 'Epoch[0] Train-CrossEntropy=' in logs[name]
    assert sorted(digests) == ['0', '1']
    assert digests['0'] == digests['1']
    # worker 0 validates and writes the checkpoint; the other only trains
    validating = [n for n in ('worker0', 'worker1') if 'Validation-mAP' in logs[n]]
    assert len(validating) == 1
    assert checkpoint.saved_epochs(str(prefix)) == [1]
    assert os.path.exists(os.path.join(str(tmp_path / 'run'), 'train.log'))
    assert os.path.exists(os.path.join(str(tmp_path / 'run'), 'train.worker1.log'))


def test_dist_kvstore_without_launcher_is_a_clear_error(data, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith('DMLC_')}
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'train.py'), '--kv-store', 'dist_sync', '--cpu',
         '--train-path', data['train_rec'], '--prefix', str(tmp_path / 'ssd')],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert ('--kv-store dist_sync needs the ps-lite environment (DMLC_ROLE, DMLC_PS_ROOT_URI, '
            'DMLC_PS_ROOT_PORT, DMLC_NUM_SERVER, DMLC_NUM_WORKER not set); start the workers '
            'with tools/launch.py') in result.stderr


def test_failing_worker_stops_the_job_with_its_status(tmp_path):
    fail_once = 'import os, sys; sys.exit(3 if os.environ["DMLC_ROLE"] == "worker" else 0)'
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', 'launch.py'), '-n', '2', '-s', '1',
         '--timeout', '60', '--', sys.executable, '-c', fail_once],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3
    assert 'exited with status 3; stopping the job' in result.stderr


def test_ssh_launcher_builds_remote_commands(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, 'tools'))
    try:
        import launch
    finally:
        sys.path.pop(0)
    hosts = tmp_path / 'hosts'
    hosts.write_text('# cluster\nnode-a\nnode-b  # second\n\n')
    args = launch.parse_args(['-n', '3', '-s', '2', '--launcher', 'ssh', '-H', str(hosts),
                              '--root-uri', '10.0.0.1', '--', 'python', 'train.py', '--lr', '0.1'])
    processes = launch.plan(args, 9091)
    assert [(n, h) for n, h, _, _ in processes] == [
        ('scheduler', None), ('server0', 'node-a'), ('server1', 'node-b'),
        ('worker0', 'node-a'), ('worker1', 'node-b'), ('worker2', 'node-a')]
    name, host, env, command = processes[4]
    assert env == {'DMLC_ROLE': 'worker', 'DMLC_PS_ROOT_URI': '10.0.0.1',
                   'DMLC_PS_ROOT_PORT': '9091', 'DMLC_NUM_SERVER': '2', 'DMLC_NUM_WORKER': '3',
                   'DMLC_NODE_HOST': 'node-b'}
    ssh = launch.ssh_command(host, env, command, 22)
    assert ssh[:6] == ['ssh', '-o', 'StrictHostKeyChecking=no', '-p', '22', 'node-b']
    assert ssh[6].endswith('DMLC_ROLE=worker python train.py --lr 0.1')
    with pytest.raises(SystemExit):
        launch.parse_args(['-n', '2', '--launcher', 'ssh', '-H', str(hosts), '--', 'x'])
