"""Local rewrites of a symbol's JSON graph for inference binding, and the one every
low-precision or fused inference path wants: undoing the prediction heads' zero-filter padding.

``common.zero_padded_filters`` pads a head's weight and bias with zero filters (a Concat with
``_zeros``) and crops the output (``slice_axis``), because oneDNN's fp32 AVX2 convolutions are
fastest on blocks of 8 filters when training.  Bound for inference, that padding is computed on
every forward and makes the weight a computed value: MXNet's INT8 convolution then quantises and
reorders it on every call (VGG16-SSD300 INT8: 35 -> 31 ms per image without it, measured).
:func:`without_head_padding` gives the same network on the true weights; parameter names and
shapes are the checkpoint's, so only the bound graph differs.
"""
import json

import mxnet as mx


class Graph:
    """The symbol's JSON graph with each node's readers, for local rewrites."""

    def __init__(self, sym):
        self.graph = json.loads(sym.tojson())
        self.nodes = self.graph["nodes"]
        self.readers = {i: [] for i in range(len(self.nodes))}
        for index, node in enumerate(self.nodes):
            for entry in node["inputs"]:
                self.readers[entry[0]].append(index)
        self.heads = {entry[0] for entry in self.graph["heads"]}

    def only_reader(self, index, op):
        """The single node reading node ``index`` if it is an ``op`` and ``index`` is no
        graph output; else None."""
        readers = self.readers[index]
        if len(readers) == 1 and index not in self.heads and self.nodes[readers[0]]["op"] == op:
            return readers[0]
        return None

    def unpadded(self, entry):
        """For a Concat(variable, zeros, dim=0) input (a head's zero-filter padding): the
        variable's entry; else None."""
        node = self.nodes[entry[0]]
        if node["op"] != "Concat" or int(node.get("attrs", {}).get("dim", "1")) != 0:
            return None
        parts = [self.nodes[e[0]] for e in node["inputs"]]
        if len(parts) == 2 and parts[0]["op"] == "null" and parts[1]["op"] == "_zeros":
            return node["inputs"][0]
        return None

    def symbol(self, replaced):
        """The graph with node i's readers reading node ``replaced[i]`` instead; nodes no
        output depends on any more are dropped."""
        def resolve(entry):
            index = entry[0]
            while index in replaced:
                index = replaced[index]
            return [index] + list(entry[1:])
        for node in self.nodes:
            node["inputs"] = [resolve(e) for e in node["inputs"]]
        heads = [resolve(e) for e in self.graph["heads"]]
        keep, stack = set(), [e[0] for e in heads]
        while stack:
            index = stack.pop()
            if index not in keep:
                keep.add(index)
                stack.extend(e[0] for e in self.nodes[index]["inputs"])
        order = sorted(keep)  # inputs precede readers in MXNet's JSON: sorted keeps that
        new_index = {old: new for new, old in enumerate(order)}

        def renumber(entry):
            return [new_index[entry[0]]] + list(entry[1:])
        graph = dict(self.graph)
        graph["nodes"] = [dict(self.nodes[i], inputs=[renumber(e) for e in self.nodes[i]["inputs"]])
                          for i in order]
        graph["arg_nodes"] = [new_index[i] for i in self.graph["arg_nodes"] if i in keep]
        graph["heads"] = [renumber(e) for e in heads]
        graph.pop("node_row_ptr", None)
        return mx.sym.load_json(json.dumps(graph))


def no_bias(node):
    return node.get("attrs", {}).get("no_bias", "False").lower() in ("true", "1")


def undo_head_padding(graph, index):
    """(inputs, true filter count, index of the crop) of the zero-padded head convolution at
    ``index`` read on its true weight and bias; None for any other node."""
    node = graph.nodes[index]
    if node["op"] != "Convolution":
        return None
    inputs, num_filter = [list(e) for e in node["inputs"]], int(node["attrs"]["num_filter"])
    crop = graph.only_reader(index, "slice_axis")
    weight = graph.unpadded(inputs[1])
    bias = None if no_bias(node) else graph.unpadded(inputs[2])
    if crop is None or weight is None or (not no_bias(node) and bias is None):
        return None
    crop_attrs = graph.nodes[crop].get("attrs", {})
    end_text = crop_attrs.get("end", "None")
    end = int(end_text) if end_text.isdigit() else 0
    if (int(crop_attrs.get("axis", "0")) != 1 or int(crop_attrs.get("begin", "0")) != 0
            or not 0 < end < num_filter):
        return None
    return [inputs[0], weight] + ([] if bias is None else [bias]), end, crop


def without_head_padding(sym):
    """``sym`` with every zero-padded head convolution on its true weight and bias (same
    outputs, same parameters; see the module docstring); ``sym`` itself where none is."""
    graph = Graph(sym)
    replaced = {}
    for index, node in enumerate(graph.nodes):
        unpadded = undo_head_padding(graph, index)
        if unpadded is None:
            continue
        inputs, num_filter, crop = unpadded
        node["inputs"] = inputs
        node["attrs"] = dict(node["attrs"], num_filter=str(num_filter))
        replaced[crop] = index
    return graph.symbol(replaced) if replaced else sym
