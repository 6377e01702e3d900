"""Draw an SSD network: a graphviz rendering when graphviz (Python package and the ``dot``
program) is installed, otherwise — or with ``--table`` — a layer table with output shapes.

    python -m tools.visualize_net --network mobilenet_0.25 --data-shape 256 --table
    python -m tools.visualize_net --network vgg16_reduced --train --output-dir output/
"""
import argparse
import os
import shutil

import mxnet as mx

from config.cli import data_shape as parse_data_shape
from symbol import symbol_factory  # its builders register the MultiBox operators
from symbol.common import as_pair

# Label shape used to infer the training graph's shapes: one padded object row.
LABEL_SHAPE = (1, 1, 6)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="vgg16_reduced",
                        choices=symbol_factory.known_networks())
    parser.add_argument("--num-classes", type=int, default=20,
                        help="object classes, background excluded")
    parser.add_argument("--data-shape", type=parse_data_shape, default=300,
                        help="input side, or H,W")
    parser.add_argument("--train", action=argparse.BooleanOptionalAction, default=False,
                        help="draw the training graph instead of the test graph")
    parser.add_argument("--output-dir", default=".", help="where the graphviz rendering goes")
    parser.add_argument("--format", default="pdf", help="graphviz output format (pdf, png, svg)")
    parser.add_argument("--table", action=argparse.BooleanOptionalAction, default=False,
                        help="print the layer table even when graphviz is available")
    return parser.parse_args(argv)


def graphviz_available():
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return False
    return shutil.which("dot") is not None


def build(args):
    """(symbol, input shapes, graph title)."""
    height, width = as_pair(args.data_shape)
    shapes = {"data": (1, 3, height, width)}
    if args.train:
        net = symbol_factory.get_symbol_train(args.network, args.data_shape, args.num_classes)
        shapes["label"] = LABEL_SHAPE
        title = "ssd_%s_%dx%d_train" % (args.network, height, width)
    else:
        net = symbol_factory.get_symbol(args.network, args.data_shape, args.num_classes)
        title = "ssd_%s_%dx%d_test" % (args.network, height, width)
    return net, shapes, title


def make_graph(net, shapes, title, fmt):
    """graphviz.Digraph of ``net``, edges labelled with the inferred shapes where MXNet can."""
    def plot(shape):
        return mx.viz.plot_network(net, shape=shape, title=title, save_format=fmt,
                                   node_attrs={"fixedsize": "false"})
    try:
        return plot(shapes)
    except KeyError:
        # plot_network cannot label edges leaving a multi-output node (MultiBoxTarget in the
        # training graph): draw that graph unlabelled.
        return plot(None)


def render(net, shapes, title, output_dir, fmt):
    """Writes ``<output_dir>/<title>.<fmt>`` (needs ``dot``) and returns its path."""
    os.makedirs(output_dir, exist_ok=True)
    graph = make_graph(net, shapes, title, fmt)
    return graph.render(filename=title, directory=output_dir, cleanup=True)


def main(argv=None):
    args = parse_args(argv)
    net, shapes, title = build(args)
    if args.table or not graphviz_available():
        if not args.table:
            print("graphviz (Python package + 'dot') not found: printing the layer table")
        mx.viz.print_summary(net, shape=shapes)
        return None
    path = render(net, shapes, title, args.output_dir, args.format)
    print("saved %s" % path)
    return path


if __name__ == "__main__":
    main()
