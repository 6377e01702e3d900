"""Random weights for networks that have no trained parameters here (benchmarks, tests)."""
import mxnet as mx


def random_params(sym, side, gains=None):
    """(arg_params, aux_params) for ``sym`` at a side x side input: He-initialised weights
    (activations stay O(1) through deep networks), each multiplied by the value of the first
    ``gains`` suffix its name ends with, and neutral BatchNorm statistics.  Seed MXNet's
    generator (``mx.random.seed``) first for repeatable weights."""
    arg_shapes, _, aux_shapes = sym.infer_shape(data=(1, 3, side, side))
    init = mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2)
    attrs = sym.attr_dict()  # a variable's own initialiser (e.g. the L2 scales) comes first
    args = {}
    for name, shape in zip(sym.list_arguments(), arg_shapes):
        if name != "data":
            args[name] = mx.nd.zeros(shape)
            init(mx.init.InitDesc(name, attrs=attrs.get(name, {})), args[name])
            args[name] *= next((g for s, g in (gains or {}).items() if name.endswith(s)), 1.0)
    auxs = {name: (mx.nd.ones if name.endswith("_var") else mx.nd.zeros)(shape)
            for name, shape in zip(sym.list_auxiliary_states(), aux_shapes)}
    return args, auxs
