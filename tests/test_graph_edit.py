"""symbol/graph_edit.py: the heads' zero-filter padding undone gives the same outputs from the
same parameters, with no Concat of a weight and no crop left."""
import json

import mxnet as mx
import numpy as np
import pytest

from bench.random_weights import random_params
from symbol import common
from symbol.graph_edit import without_head_padding
from symbol.symbol_factory import get_symbol


def ops(sym):
    return [node["op"] for node in json.loads(sym.tojson())["nodes"]]


def forward(sym, args, auxs, data):
    exe = sym.bind(mx.cpu(), dict(args, data=mx.nd.array(data)), aux_states=auxs,
                   grad_req="null")
    return [out.asnumpy() for out in exe.forward(is_train=False)]


@pytest.mark.parametrize("network, side", [("mobilenet_0.25", 128), ("vgg16_reduced", 96)])
def test_unpadded_network_gives_the_same_outputs(network, side):
    sym = get_symbol(network, side, 4)
    padded = sum(1 for name in sym.get_internals().list_outputs() if name.endswith("_crop_output"))
    assert padded >= 2  # the test must see padded heads: 4 classes + background do not fill 8
    unpadded = without_head_padding(sym)
    assert "slice_axis" not in ops(unpadded) and "_zeros" not in ops(unpadded)
    assert unpadded.list_arguments() == sym.list_arguments()
    assert unpadded.list_auxiliary_states() == sym.list_auxiliary_states()
    args, auxs = random_params(sym, side)
    data = np.random.RandomState(0).uniform(-100, 100, (2, 3, side, side)).astype(np.float32)
    # the detection operator's inputs (class probabilities, box offsets, anchors): its output
    # rows would reorder on the near-ties of random weights
    heads, reference_heads = unpadded.get_children(), sym.get_children()
    assert heads.list_outputs() == ["cls_prob_output", "multibox_loc_pred_output",
                                    "multibox_anchors_output"]
    for ours, reference in zip(forward(heads, args, auxs, data),
                               forward(reference_heads, args, auxs, data)):
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4)  # other conv kernels


def test_a_network_without_padding_is_returned_as_it_is(monkeypatch):
    monkeypatch.setattr(common, "CHANNEL_BLOCK", 1)
    sym = get_symbol("mobilenet_0.25", 128, 4)
    assert without_head_padding(sym) is sym
