"""The model as a ``torch.fx`` graph: traced once per live model (thread-safe), checked
against the layer handlers, and planned (BatchNorm folded, ReLU fused, values freed early).
"""

from __future__ import annotations

import threading
import weakref

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from landscape.engine.batched.kernels import _Fusion, _only_user, _Unsupported
from landscape.engine.batched.layers import _check_node

# ----------------------------------------------------------------------------- graph


class _ThreadSafeTracer(torch.fx.Tracer):
    """fx's tracer, harmless to other threads.

    While `Tracer.trace` runs, fx patches `torch.nn.Module.__call__` and `__getattr__` for
    the whole process, so a model called from another thread (another session's training)
    would go through the tracer and fail. Calls from any thread but the tracing one go
    straight to the module, as if nothing were patched.
    """

    def __init__(self):
        super().__init__()
        self._owner = threading.get_ident()

    def call_module(self, m, forward, args, kwargs):
        if threading.get_ident() != self._owner:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        if threading.get_ident() != self._owner:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


def _symbolic_trace(model: nn.Module) -> torch.fx.GraphModule:
    tracer = _ThreadSafeTracer()
    graph = tracer.trace(model)
    return torch.fx.GraphModule(tracer.root, graph, model.__class__.__name__)


#: Traces of live models: model -> (its signature, the graph or why it is unsupported), so a
#: model's later surfaces skip the trace (a few ms, as much as a small surface's points).
#: Weak keys: an entry goes with its model (the graph holds the submodules, not the model).
_TRACES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TRACES_LOCK = threading.Lock()


def _signature(model: nn.Module) -> tuple:
    """What a trace depends on: the module tree (names, objects, types) and every module's
    settings as its repr shows them, so a replaced layer or a changed setting traces again."""
    return str(model), tuple((n, id(m), type(m)) for n, m in model.named_modules())


def _traced(model: nn.Module) -> torch.fx.GraphModule | str:
    """``_trace(model)``, or the reason it is unsupported, remembered per live model."""
    if not isinstance(model, nn.Module):
        return f"model={type(model).__name__} is not an nn.Module"
    sig = _signature(model)
    with _TRACES_LOCK:
        hit = _TRACES.get(model)
    if hit is not None and hit[0] == sig:
        return hit[1]
    try:
        gm = _trace(model)
    except _Unsupported as e:
        gm = str(e)
    with _TRACES_LOCK:
        _TRACES[model] = (sig, gm)
    return gm


def _trace(model: nn.Module) -> torch.fx.GraphModule:
    """The model as an fx graph whose every node has a handler, else _Unsupported."""
    if not isinstance(model, nn.Module):
        raise _Unsupported(f"model={type(model).__name__} is not an nn.Module")
    try:
        gm = _symbolic_trace(model)
    except Exception as e:  # data-dependent control flow, unsupported Python, ...
        raise _Unsupported(f"torch.fx cannot trace it ({type(e).__name__}: {e})") from None
    modules = dict(gm.named_modules())
    if sum(node.op == "placeholder" for node in gm.graph.nodes) != 1:
        raise _Unsupported("forward must take exactly one input")
    for node in gm.graph.nodes:
        _check_node(node, modules)
    return gm


def _plan(nodes, modules) -> tuple[dict[str, _Fusion], set[str]]:
    """Fuse Linear/Conv2d -> [BatchNorm] -> [ReLU] chains: {layer: _Fusion}, skipped nodes.

    Only chains where each intermediate value has a single reader: then nobody sees the
    unfused value, and the skipped nodes just pass their input on.
    """
    fusions, skipped = {}, set()
    for node in nodes:
        layer = modules.get(node.target) if node.op == "call_module" else None
        if type(layer) not in _NORM_AFTER:
            continue
        bn, relu, last = None, False, node
        nxt = _only_user(last)
        after = modules.get(nxt.target) if nxt is not None and nxt.op == "call_module" else None
        if type(after) is _NORM_AFTER[type(layer)] and after.num_features == layer.weight.shape[0]:
            bn, last = after, nxt
            skipped.add(nxt.name)
            nxt = _only_user(last)
        if nxt is not None and _is_relu(nxt, modules):
            relu = True
            skipped.add(nxt.name)
        fusions[node.name] = _Fusion(bn, relu)
    return fusions, skipped


_NORM_AFTER = {nn.Linear: nn.BatchNorm1d, nn.Conv2d: nn.BatchNorm2d}  # foldable pairs


def _is_relu(node: torch.fx.Node, modules) -> bool:
    if node.op == "call_module":
        return type(modules[node.target]) is nn.ReLU
    return node.target in (torch.relu, F.relu, "relu")


def _last_uses(nodes) -> dict[str, list[str]]:
    """node name -> names of the values it reads last (freed right after it runs)."""
    last: dict[str, str] = {}
    for node in nodes:
        for a in node.all_input_nodes:
            last[a.name] = node.name
    out: dict[str, list[str]] = {}
    for value, reader in last.items():
        out.setdefault(reader, []).append(value)
    return out
