"""Independent float64 implementation of Excitation Backprop as specified in
/work/shared/reference/README.md, sections 3-5.

The model is compiled into a flat program of primitive nodes (conv, linear,
batchnorm, relu, maxpool, avgpool, flatten, dropout, add).  A forward pass
records every node's inputs; the backward pass walks the program in reverse
and applies the rule of each node explicitly (no autograd, no hooks).

Only torch tensor arithmetic, torch.nn.functional.conv{1,2,3}d,
torch.nn.grad.conv{1,2,3}d_input and torch.nn.functional.max_pool2d (for the
argmax indices) are used.  Pooling and resizing are done with explicit
per-axis window matrices built from the README's formulas.
"""

import json
import math
import struct

import numpy as np
import torch
import torch.nn.functional as F
import torch.nn.grad as nngrad

EPS_BN = 1e-5
EPS_EBP = 1e-20


# --------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    base = 8 + n
    out = {}
    meta = header.pop("__metadata__", None)
    for k, v in header.items():
        s, e = v["data_offsets"]
        dt = {"F32": np.float32, "I64": np.int64}[v["dtype"]]
        out[k] = np.frombuffer(b[base + s:base + e], dtype=dt).reshape(v["shape"]).copy()
    return out, meta


def write_safetensors(path, tensors, metadata):
    """tensors: ordered dict name -> numpy array (float32 or int64)."""
    header = {}
    blobs = []
    off = 0
    for k, a in tensors.items():
        a = np.ascontiguousarray(a)
        if a.dtype == np.float32:
            dt = "F32"
        elif a.dtype == np.int64:
            dt = "I64"
        else:
            raise TypeError(f"{k}: dtype {a.dtype}")
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)


# --------------------------------------------------------------------------
# program
# --------------------------------------------------------------------------

class Program:
    """Flat list of primitive nodes.  Tensor id 0 is the model input."""

    def __init__(self):
        self.nodes = []
        self.next_tid = 1
        self.names = {}          # module name -> tensor id of its (last) output
        self.params = []         # (param name, shape) in state_dict order
        self.classifier_candidates = []  # conv/linear module names, definition order

    def add(self, op, ins, name=None, **attrs):
        out = self.next_tid
        self.next_tid += 1
        node = dict(op=op, ins=list(ins), out=out, name=name, **attrs)
        self.nodes.append(node)
        if name is not None:
            self.names[name] = out
        return out

    # convenience builders ---------------------------------------------------
    def conv(self, x, name, dims, cin, cout, k, s, p, bias):
        k, s, p = _tup(k, dims), _tup(s, dims), _tup(p, dims)
        self.params.append((name + ".weight", [cout, cin, *k]))
        if bias:
            self.params.append((name + ".bias", [cout]))
        self.classifier_candidates.append(name)
        return self.add("conv", [x], name, dims=dims, stride=s, padding=p, bias=bias)

    def linear(self, x, name, fin, fout, bias):
        self.params.append((name + ".weight", [fout, fin]))
        if bias:
            self.params.append((name + ".bias", [fout]))
        self.classifier_candidates.append(name)
        return self.add("linear", [x], name, bias=bias)

    def bn(self, x, name, c):
        for p in ("weight", "bias", "running_mean", "running_var"):
            self.params.append((f"{name}.{p}", [c]))
        return self.add("bn", [x], name)


def _tup(v, d):
    if isinstance(v, (list, tuple)):
        assert len(v) == d, (v, d)
        return tuple(int(x) for x in v)
    return (int(v),) * d


def build_program(spec):
    kind = spec["kind"]
    P = Program()
    if kind == "vgg":
        x = 0
        c = spec["in_channels"]
        i = 0
        for v in spec["cfg"]:
            if v == "M":
                x = P.add("maxpool", [x], f"features.{i}", kernel=(2, 2), stride=(2, 2), padding=(0, 0))
                i += 1
            else:
                x = P.conv(x, f"features.{i}", 2, c, v, 3, 1, 1, True)
                i += 1
                if spec["batch_norm"]:
                    x = P.bn(x, f"features.{i}", v)
                    i += 1
                x = P.add("relu", [x], f"features.{i}")
                i += 1
                c = v
        P.names["features"] = x
        ph, pw = spec["pool_size"]
        x = P.add("avgpool", [x], "avgpool", adaptive=True, output=(ph, pw))
        x = P.add("flatten", [x], None)
        h = spec["hidden"]
        x = P.linear(x, "classifier.0", c * ph * pw, h, True)
        x = P.add("relu", [x], "classifier.1")
        x = P.add("dropout", [x], "classifier.2")
        x = P.linear(x, "classifier.3", h, h, True)
        x = P.add("relu", [x], "classifier.4")
        x = P.add("dropout", [x], "classifier.5")
        x = P.linear(x, "classifier.6", h, spec["num_classes"], True)
        P.names["classifier"] = x
    elif kind == "resnet":
        w = spec["width"]
        exp = 1 if spec["block"] == "basic" else 4
        x = P.conv(0, "conv1", 2, spec["in_channels"], w, 7, 2, 3, False)
        x = P.bn(x, "bn1", w)
        x = P.add("relu", [x], "relu")
        x = P.add("maxpool", [x], "maxpool", kernel=(3, 3), stride=(2, 2), padding=(1, 1))
        inpl = w
        for li, n in enumerate(spec["layers"]):
            planes = w * (2 ** li)
            for bi in range(n):
                s = 2 if (li > 0 and bi == 0) else 1
                pre = f"layer{li + 1}.{bi}"
                xin = x
                if spec["block"] == "basic":
                    y = P.conv(xin, pre + ".conv1", 2, inpl, planes, 3, s, 1, False)
                    y = P.bn(y, pre + ".bn1", planes)
                    y = P.add("relu", [y], pre + ".relu")
                    y = P.conv(y, pre + ".conv2", 2, planes, planes, 3, 1, 1, False)
                    a = P.bn(y, pre + ".bn2", planes)
                else:
                    y = P.conv(xin, pre + ".conv1", 2, inpl, planes, 1, 1, 0, False)
                    y = P.bn(y, pre + ".bn1", planes)
                    y = P.add("relu", [y], pre + ".relu")
                    y = P.conv(y, pre + ".conv2", 2, planes, planes, 3, s, 1, False)
                    y = P.bn(y, pre + ".bn2", planes)
                    y = P.add("relu", [y], pre + ".relu")
                    y = P.conv(y, pre + ".conv3", 2, planes, planes * 4, 1, 1, 0, False)
                    a = P.bn(y, pre + ".bn3", planes * 4)
                if s != 1 or inpl != planes * exp:
                    b = P.conv(xin, pre + ".downsample.0", 2, inpl, planes * exp, 1, s, 0, False)
                    b = P.bn(b, pre + ".downsample.1", planes * exp)
                    P.names[pre + ".downsample"] = b
                else:
                    b = xin
                ysum = P.add("add", [a, b], None)
                # the block's ReLU module is shared: its last call is the block output
                x = P.add("relu", [ysum], pre + ".relu")
                P.names[pre] = x
                inpl = planes * exp
            P.names[f"layer{li + 1}"] = x
        x = P.add("avgpool", [x], "avgpool", adaptive=True, output=(1, 1))
        x = P.add("flatten", [x], None)
        x = P.linear(x, "fc", inpl, spec["num_classes"], True)
    elif kind == "sequential":
        x = 0
        for i, L in enumerate(spec["layers"]):
            t = L["type"]
            nm = str(i)
            if t in ("conv1d", "conv2d", "conv3d"):
                d = int(t[4])
                x = P.conv(x, nm, d, L["in"], L["out"], L["kernel"], L["stride"], L["padding"], L["bias"])
            elif t == "linear":
                x = P.linear(x, nm, L["in"], L["out"], L["bias"])
            elif t == "relu":
                x = P.add("relu", [x], nm)
            elif t == "maxpool2d":
                x = P.add("maxpool", [x], nm, kernel=_tup(L["kernel"], 2), stride=_tup(L["stride"], 2),
                          padding=_tup(L["padding"], 2))
            elif t in ("avgpool1d", "avgpool2d", "avgpool3d"):
                d = int(t[7])
                x = P.add("avgpool", [x], nm, adaptive=False, kernel=_tup(L["kernel"], d),
                          stride=_tup(L["stride"], d), padding=_tup(L["padding"], d))
            elif t in ("adaptiveavgpool1d", "adaptiveavgpool2d", "adaptiveavgpool3d"):
                d = int(t[15])
                x = P.add("avgpool", [x], nm, adaptive=True, output=_tup(L["output"], d))
            elif t == "batchnorm2d":
                x = P.bn(x, nm, L["features"])
            elif t == "flatten":
                x = P.add("flatten", [x], nm)
            else:
                raise ValueError(t)
    else:
        raise ValueError(kind)
    P.output = x
    index_nodes(P)
    return P


# --------------------------------------------------------------------------
# pooling / resize as explicit per-axis matrices
# --------------------------------------------------------------------------

def pool_matrix_fixed(n, k, s, p, dtype):
    m = (n + 2 * p - k) // s + 1
    M = torch.zeros(m, n, dtype=dtype)
    for i in range(m):
        st = i * s - p
        for j in range(st, st + k):
            if 0 <= j < n:
                M[i, j] += 1.0 / k          # divisor: full kernel (padding counted)
    return M


def pool_matrix_adaptive(n, m, dtype):
    M = torch.zeros(m, n, dtype=dtype)
    for i in range(m):
        st = (i * n) // m
        en = -((-(i + 1) * n) // m)          # ceil((i+1) n / m)
        for j in range(st, en):
            M[i, j] = 1.0 / (en - st)
    return M


def apply_axes(x, mats, first_axis=2):
    """y = x x_axis M for each axis (M: [m, n])."""
    for a, M in enumerate(mats):
        ax = first_axis + a
        x = torch.movedim(torch.tensordot(x, M, dims=([ax], [1])), -1, ax)
    return x


def resize_matrix(n, m, mode, dtype):
    R = torch.zeros(m, n, dtype=dtype)
    for d in range(m):
        if mode == "bilinear":
            src = (d + 0.5) * n / m - 0.5
            if src < 0:
                src = 0.0
            i0 = int(math.floor(src))
            i1 = min(i0 + 1, n - 1)
            lam = src - i0
            R[d, i0] += 1 - lam
            R[d, i1] += lam
        elif mode == "nearest":
            exact = min((d * n) // m, n - 1)
            sc = np.float32(n) / np.float32(m)            # PyTorch: scale in float32
            f32 = min(int(math.floor(np.float32(d) * sc)), n - 1)
            assert exact == f32, ("nearest: f32 scale differs from the exact one", n, m, d)
            R[d, exact] = 1.0
        else:
            raise ValueError(mode)
    return R


# --------------------------------------------------------------------------
# forward / backward
# --------------------------------------------------------------------------

def _convfn(d):
    return {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[d]


def _convinput(d):
    return {1: nngrad.conv1d_input, 2: nngrad.conv2d_input, 3: nngrad.conv3d_input}[d]


def forward(P, params, x):
    """Returns (acts, aux): acts[tid] = tensor; aux[node index] = per-node data."""
    acts = {0: x}
    aux = {}
    for ni, nd in enumerate(P.nodes):
        op = nd["op"]
        xin = acts[nd["ins"][0]]
        if op == "conv":
            W = params[nd["name"] + ".weight"]
            b = params.get(nd["name"] + ".bias") if nd["bias"] else None
            y = _convfn(nd["dims"])(xin, W, b, stride=nd["stride"], padding=nd["padding"])
        elif op == "linear":
            W = params[nd["name"] + ".weight"]
            y = xin @ W.T
            if nd["bias"]:
                y = y + params[nd["name"] + ".bias"]
        elif op == "bn":
            nm = nd["name"]
            sh = (1, -1) + (1,) * (xin.dim() - 2)
            y = (xin - params[nm + ".running_mean"].reshape(sh)) / torch.sqrt(
                params[nm + ".running_var"].reshape(sh) + EPS_BN) * params[nm + ".weight"].reshape(sh) \
                + params[nm + ".bias"].reshape(sh)
        elif op == "relu":
            y = torch.clamp(xin, min=0)
        elif op == "maxpool":
            y, idx = F.max_pool2d(xin, nd["kernel"], nd["stride"], nd["padding"], return_indices=True)
            aux[ni] = idx
        elif op == "avgpool":
            sp = xin.shape[2:]
            if nd["adaptive"]:
                mats = [pool_matrix_adaptive(n, m, xin.dtype) for n, m in zip(sp, nd["output"])]
            else:
                mats = [pool_matrix_fixed(n, k, s, p, xin.dtype)
                        for n, k, s, p in zip(sp, nd["kernel"], nd["stride"], nd["padding"])]
            aux[ni] = mats
            y = apply_axes(xin, mats)
        elif op == "flatten":
            y = xin.reshape(xin.shape[0], -1)
        elif op == "dropout":
            y = xin
        elif op == "add":
            y = xin + acts[nd["ins"][1]]
        else:
            raise ValueError(op)
        acts[nd["out"]] = y
    return acts, aux


def node_backward(nd, aux, acts, params, G, mode, negate=False):
    """mode: 'ebp' or 'grad'.  Returns list of input signals."""
    op = nd["op"]
    x = acts[nd["ins"][0]]
    if op == "conv":
        W = params[nd["name"] + ".weight"]
        if negate:
            W = -W
        d = nd["dims"]
        if mode == "ebp":
            Wp = torch.clamp(W, min=0)
            Z = _convfn(d)(x, Wp, None, stride=nd["stride"], padding=nd["padding"])
            S = G / (Z + EPS_EBP)
            return [x * _convinput(d)(list(x.shape), Wp, S, stride=nd["stride"], padding=nd["padding"])]
        return [_convinput(d)(list(x.shape), W, G, stride=nd["stride"], padding=nd["padding"])]
    if op == "linear":
        W = params[nd["name"] + ".weight"]
        if negate:
            W = -W
        if mode == "ebp":
            Wp = torch.clamp(W, min=0)
            Z = x @ Wp.T
            return [x * ((G / (Z + EPS_EBP)) @ Wp)]
        return [G @ W]
    if op == "bn":
        if mode == "ebp":
            return [G]
        nm = nd["name"]
        sh = (1, -1) + (1,) * (x.dim() - 2)
        return [G * (params[nm + ".weight"] / torch.sqrt(params[nm + ".running_var"] + EPS_BN)).reshape(sh)]
    if op == "relu":
        return [G * (x > 0).to(G.dtype)]
    if op == "maxpool":
        idx = aux_get(aux, nd)
        B, C = x.shape[:2]
        g = torch.zeros(B, C, x.shape[2] * x.shape[3], dtype=G.dtype)
        g.scatter_add_(2, idx.reshape(B, C, -1), G.reshape(B, C, -1))
        return [g.reshape(x.shape)]
    if op == "avgpool":
        mats = aux_get(aux, nd)
        matsT = [M.T for M in mats]
        if mode == "ebp":
            Z = apply_axes(x, mats)
            return [x * apply_axes(G / (Z + EPS_EBP), matsT)]
        return [apply_axes(G, matsT)]
    if op == "flatten":
        return [G.reshape(x.shape)]
    if op == "dropout":
        return [G]
    if op == "add":
        a = x
        b = acts[nd["ins"][1]]
        if mode == "ebp":
            y = a + b
            return [a / y * G, b / y * G]
        return [G, G]
    raise ValueError(op)


def aux_get(aux, nd):
    return aux[nd["_index"]]


def backward(P, acts, aux, params, G0, mode, read_tid, negate_name=None, stop_tid=None, inject=None):
    """Walk the program in reverse.  Returns the signal at read_tid (or at stop_tid)."""
    sig = {P.output: G0}
    for nd in reversed(P.nodes):
        t = nd["out"]
        if inject is not None and t == inject[0]:
            sig[t] = sig.get(t, torch.zeros_like(acts[t])) - inject[1]
        if stop_tid is not None and t == stop_tid:
            return sig.get(t, torch.zeros_like(acts[t]))
        if t == read_tid:
            return sig.get(t, torch.zeros_like(acts[t]))
        if t not in sig:
            continue
        G = sig.pop(t)
        gins = node_backward(nd, aux, acts, params, G, mode, negate=(nd["name"] == negate_name and
                                                                       nd["op"] in ("conv", "linear")))
        for i, g in zip(nd["ins"], gins):
            sig[i] = sig[i] + g if i in sig else g
    assert read_tid == 0
    return sig.get(0, torch.zeros_like(acts[0]))


def index_nodes(P):
    for i, nd in enumerate(P.nodes):
        nd["_index"] = i


def layer_tid(P, name):
    if name == "":
        return 0
    if name not in P.names:
        raise KeyError(f"unknown layer '{name}'")
    return P.names[name]


def auto_classifier(P):
    return P.classifier_candidates[-1]


def smooth_matrix(n, sigma, dtype):
    """README 5.1 as an explicit [n, n] matrix: taps exp(-(k/(sqrt2*sigma+eps))^2), k = -w..w,
    w = ceil(4 sigma), normalised; replicate borders fold the taps that fall outside onto the edge rows."""
    w = int(math.ceil(4 * sigma))
    eps = 1.1920929e-07
    taps = [math.exp(-(k / (math.sqrt(2.0) * sigma + eps)) ** 2) for k in range(-w, w + 1)]
    total = sum(taps)
    S = torch.zeros(n, n, dtype=dtype)
    for d in range(n):
        for k in range(-w, w + 1):
            src = min(max(d + k, 0), n - 1)
            S[d, src] += taps[k + w] / total
    return S


def compute_map(P, params, x, method, saliency_layer, seed_signal, contrast_layer=None,
                classifier_layer=None, resize=False, resize_mode="bilinear", return_raw=False, smooth=None):
    """params: dict name -> tensor (dtype of computation); x: input; seed_signal: [B, K]."""
    acts, aux = forward(P, params, x)
    read = layer_tid(P, saliency_layer)
    if method == "excitation_backprop":
        G = backward(P, acts, aux, params, seed_signal, "ebp", read)
        raw = G.sum(1, keepdim=True)
        m = raw
    elif method == "gradient_sum":
        G = backward(P, acts, aux, params, seed_signal, "grad", read)
        raw = G.sum(1, keepdim=True)
        m = raw
    elif method == "gradient":
        G = backward(P, acts, aux, params, seed_signal, "grad", read)
        raw = G.abs().amax(1, keepdim=True)
        m = raw
    elif method == "contrastive_excitation_backprop":
        ct = layer_tid(P, contrast_layer)
        cl = classifier_layer if classifier_layer is not None else auto_classifier(P)
        C = backward(P, acts, aux, params, seed_signal, "ebp", None, negate_name=cl, stop_tid=ct)
        G = backward(P, acts, aux, params, seed_signal, "ebp", read, inject=(ct, C))
        raw = G.sum(1, keepdim=True)
        m = torch.clamp(raw, min=0)
    else:
        raise ValueError(method)
    if resize is not False and resize is not None:
        assert m.dim() == 4, "resize only for 2-D maps"
        h, w = m.shape[2:]
        if resize is True:
            H, W = x.shape[2:]
        else:
            W, H = resize
        Rh = resize_matrix(h, H, resize_mode, m.dtype)
        Rw = resize_matrix(w, W, resize_mode, m.dtype)
        m = apply_axes(m, [Rh, Rw])
    if smooth is not None and smooth > 0:
        assert m.dim() == 4, "smoothing only for 2-D maps"
        h, w = m.shape[2:]
        sigma = smooth * max(h, w)
        m = apply_axes(m, [smooth_matrix(h, sigma, m.dtype), smooth_matrix(w, sigma, m.dtype)])
    if return_raw:
        return m, raw, acts
    return m


def residual_stats(P, acts):
    """Smallest |y| over residual sums and largest |a/y|, |b/y| where y > 0."""
    min_abs_y = math.inf
    max_ratio = 0.0
    for nd in P.nodes:
        if nd["op"] == "add":
            a = acts[nd["ins"][0]]
            b = acts[nd["ins"][1]]
            y = a + b
            min_abs_y = min(min_abs_y, float(y.abs().min()))
            pos = y > 0
            if pos.any():
                max_ratio = max(max_ratio, float((a[pos] / y[pos]).abs().max()), float((b[pos] / y[pos]).abs().max()))
    return min_abs_y, max_ratio


def rel_err(a, e):
    a = torch.as_tensor(a, dtype=torch.float64)
    e = torch.as_tensor(e, dtype=torch.float64)
    s = float(e.abs().max())
    d = float((a - e).abs().max())
    return d / s if s > 0 else d
