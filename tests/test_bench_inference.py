"""bench/inference.py: one table with every runtime's row for the shipped model (quick run),
the FLOP count of a graph, and refused run lists."""
import re

import mxnet as mx
import pytest

from bench import inference


def test_graph_gflop_counts_every_multiply_add():
    data = mx.sym.var("data")
    conv = mx.sym.Convolution(data, kernel=(3, 3), pad=(1, 1), num_filter=8, name="c1")
    grouped = mx.sym.Convolution(conv, kernel=(1, 1), num_filter=4, num_group=2, name="c2")
    dense = mx.sym.FullyConnected(grouped, num_hidden=5, name="fc")
    per_image = (2 * 8 * 10 * 10 * 3 * 9      # 8 filters of 3x3x3 at 10x10
                 + 2 * 4 * 10 * 10 * 4        # 4 filters over 8 / 2 groups channels
                 + 2 * 5 * 4 * 10 * 10) / 1e9  # 5 outputs of 400 inputs
    assert inference.graph_gflop(dense, (2, 3, 10, 10)) == pytest.approx(per_image)


def test_quick_run_prints_one_table_with_every_row(shipped_model, capsys):
    assert inference.main(["--quick", "--runs", "mobilenet_224:1", "--calib-images", "4"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("runtime "):]
    assert table.count("ms/img") == 1   # one table, one column pair
    for name, _, who in inference.ROWS:
        line = re.search(r"^%s\s+(\S+)" % re.escape(name), table, re.M)
        assert line, name
        value = line.group(1)
        if who == "ours":
            assert float(value) > 0
        else:
            assert value in ("n/a", "skipped", "failed") or float(value) > 0, (name, value)
    for name in inference.OURS.values():   # ratios are to ours: exactly 1 on ours' rows
        assert re.search(r"^%s\s+[\d.]+\s+1\.00x$" % re.escape(name), table, re.M)
    # the lower bound is the graph's GFLOP at the measured sgemm rate
    rate, bound = re.search(r"^physical limit \((\d+) GFLOP/s sgemm\)\s+([\d.]+)", table,
                            re.M).groups()
    gflop = float(re.search(r"MobileNet-0.25 SSD224 (\d+\.\d+)\)", out).group(1))
    assert float(bound) == pytest.approx(gflop / float(rate) * 1e3, rel=0.05, abs=0.05)
    # demo.py, timed end to end in a fresh process: all 6 demo images written to its JSON
    demo, mxnet_import = map(float, re.search(
        r"demo.py end to end \(shipped model, 6 images, process start to JSON written\): "
        r"([\d.]+) s, of which `import mxnet` alone ([\d.]+) s", out).groups())
    assert demo > 0 and mxnet_import > 0


def test_failure_line_keeps_what_failed_without_source_locations():
    err = RuntimeError("OpenCV(4.11.0) /io/x.cpp:1058: error: (-2:Unspecified error) in "
                       "function 'handleNode'\n> Node [LpNormalization@ai.onnx]:(n1) parse "
                       "error: OpenCV(4.11.0) /io/y.hpp:108: error: (-2:Unspecified error) "
                       "Can't create layer \"n1\" of type \"LpNormalization\"\n> ")
    assert inference.failure_line(err) == ('Node [LpNormalization@ai.onnx]:(n1) parse error: '
                                           'Can\'t create layer "n1" of type "LpNormalization"')
    assert inference.failure_line(ValueError("one line")) == "one line"


@pytest.mark.parametrize("runs, message", [("mobilenet_224", "expected MODEL:BATCH"),
                                           ("alexnet:1", "unknown model\\(s\\) alexnet")])
def test_bad_run_lists_are_refused(runs, message, capsys):
    with pytest.raises(SystemExit):
        inference.parse_args(["--runs", runs])
    assert re.search(message, capsys.readouterr().err)
