"""Start an MXNet parameter-server job: one scheduler, servers and workers (ps-lite).

Every process gets the standard ps-lite environment (DMLC_ROLE, DMLC_PS_ROOT_URI,
DMLC_PS_ROOT_PORT, DMLC_NUM_SERVER, DMLC_NUM_WORKER, DMLC_NODE_HOST).  Workers run COMMAND;
the scheduler and servers run ``python -c "import mxssd_compat, mxnet"`` (importing MXNet with
a server or scheduler role serves until the workers finish).

On this machine (testing, or several processes sharing one box), everything on 127.0.0.1:

    python tools/launch.py -n 2 -s 1 -- python train.py --kv-store dist_sync ...

On several machines (the usual MXNet/dmlc way): a hosts file with one reachable host name or
address per line; servers and workers are spread over the hosts round-robin and started over
ssh (password-less login, same directory layout, data and Python environment on every host, e.g.
a shared file system); the scheduler runs here, at --root-uri, which the hosts must reach:

    python tools/launch.py -n 4 -s 2 --launcher ssh -H hosts --root-uri 10.0.0.1 \\
        -- python train.py --kv-store dist_sync --train-path /shared/data/train.rec ...

Each worker trains on its own shard of the record file; worker 0 validates and writes the
checkpoints.  The script exits with the first failing worker's status (stopping the rest), or
0 when all workers succeed.
"""
import argparse
import os
import shlex
import socket
import subprocess
import sys
import time

LOOPBACK = '127.0.0.1'
SERVE_COMMAND = (sys.executable, '-c', 'import mxssd_compat, mxnet')  # compat: numpy aliases
STOP_GRACE_SECONDS = 10
POLL_SECONDS = 0.2
TIMEOUT_STATUS = 124


def free_port(host=LOOPBACK):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def read_hosts(path):
    with open(path) as f:
        hosts = [line.split('#')[0].strip() for line in f]
    hosts = [h for h in hosts if h]
    if not hosts:
        raise SystemExit('%s: no hosts listed (one host name or address per line)' % path)
    return hosts


def ps_environment(args, port):
    return {'DMLC_PS_ROOT_URI': args.root_uri, 'DMLC_PS_ROOT_PORT': str(port),
            'DMLC_NUM_SERVER': str(args.num_servers), 'DMLC_NUM_WORKER': str(args.num_workers)}


def plan(args, port):
    """[(name, host or None for this machine, environment, command)] for every process."""
    base = ps_environment(args, port)
    hosts = read_hosts(args.hostfile) if args.launcher == 'ssh' else [None]
    here = dict(base, DMLC_ROLE='scheduler', DMLC_NODE_HOST=args.root_uri)
    processes = [('scheduler', None, here, list(SERVE_COMMAND))]
    for role, count, command in (('server', args.num_servers, list(SERVE_COMMAND)),
                                 ('worker', args.num_workers, args.command)):
        for k in range(count):
            host = hosts[k % len(hosts)]
            env = dict(base, DMLC_ROLE=role, DMLC_NODE_HOST=host or LOOPBACK)
            processes.append(('%s%d' % (role, k), host, env, command))
    return processes


def ssh_command(host, env, command, ssh_port):
    exports = ' '.join('%s=%s' % (k, shlex.quote(v)) for k, v in sorted(env.items()))
    remote = 'cd %s && env %s %s' % (shlex.quote(os.getcwd()), exports,
                                     ' '.join(shlex.quote(c) for c in command))
    return ['ssh', '-o', 'StrictHostKeyChecking=no', '-p', str(ssh_port), host, remote]


def start(processes, log_dir, ssh_port):
    started = []
    for name, host, env, command in processes:
        output = None
        if log_dir:
            os.makedirs(log_dir, exist_ok=True)
            output = open(os.path.join(log_dir, name + '.log'), 'w')
        if host is None:
            popen = subprocess.Popen(command, env=dict(os.environ, **env), stdout=output,
                                     stderr=subprocess.STDOUT if output else None)
        else:
            popen = subprocess.Popen(ssh_command(host, env, command, ssh_port), stdout=output,
                                     stderr=subprocess.STDOUT if output else None)
        started.append((name, popen, output))
    return started


def stop(started):
    """Terminate what still runs (only the processes this launcher started)."""
    for _, popen, _ in started:
        if popen.poll() is None:
            popen.terminate()
    deadline = time.time() + STOP_GRACE_SECONDS
    for _, popen, _ in started:
        try:
            popen.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


def supervise(started, timeout):
    """Wait for the workers; returns the job's exit status."""
    workers = [(n, p) for n, p, _ in started if n.startswith('worker')]
    deadline = time.time() + timeout if timeout else None
    while True:
        for name, popen in workers:
            status = popen.poll()
            if status not in (None, 0):
                print('launch.py: %s exited with status %d; stopping the job' % (name, status),
                      file=sys.stderr)
                return status
        if all(p.poll() == 0 for _, p in workers):
            return 0
        if deadline and time.time() > deadline:
            print('launch.py: timed out after %g s; stopping the job' % timeout, file=sys.stderr)
            return TIMEOUT_STATUS
        time.sleep(POLL_SECONDS)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split('\n\n', 1)[1])
    p.add_argument('-n', '--num-workers', type=int, required=True, help='worker processes')
    p.add_argument('-s', '--num-servers', type=int, default=1, help='server processes')
    p.add_argument('--launcher', choices=('local', 'ssh'), default='local',
                   help='local: everything on 127.0.0.1; ssh: servers/workers on --hostfile')
    p.add_argument('-H', '--hostfile', help='hosts for --launcher ssh, one per line')
    p.add_argument('--root-uri', default=LOOPBACK,
                   help='address of this machine (the scheduler) as the hosts see it')
    p.add_argument('--port', type=int, default=0, help='scheduler port (0: any free port)')
    p.add_argument('--ssh-port', type=int, default=22)
    p.add_argument('--log-dir', help='write each process output to <dir>/<role><k>.log')
    p.add_argument('--timeout', type=float, default=0, help='stop the job after S seconds')
    p.add_argument('command', nargs=argparse.REMAINDER, help='worker command (after --)')
    args = p.parse_args(argv)
    if args.command and args.command[0] == '--':
        args.command = args.command[1:]
    if not args.command:
        p.error('no worker command given (put it after --)')
    if args.num_workers < 1 or args.num_servers < 1:
        p.error('--num-workers and --num-servers must be at least 1')
    if args.launcher == 'ssh' and not args.hostfile:
        p.error('--launcher ssh needs --hostfile')
    if args.launcher == 'ssh' and args.root_uri == LOOPBACK:
        p.error('--launcher ssh needs --root-uri: this machine\'s address as the hosts see it')
    return args


def main(argv=None):
    args = parse_args(argv)
    port = args.port or free_port(LOOPBACK if args.launcher == 'local' else '')
    started = start(plan(args, port), args.log_dir, args.ssh_port)
    try:
        status = supervise(started, args.timeout)
    except KeyboardInterrupt:
        status = 130
    if status == 0:
        # The servers and the scheduler leave once the workers finalised; give them the grace.
        for name, popen, _ in started:
            try:
                popen.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
    stop(started)
    for _, _, output in started:
        if output:
            output.close()
    return status


if __name__ == '__main__':
    sys.exit(main())
