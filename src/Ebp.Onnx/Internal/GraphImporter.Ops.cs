using Ebp.Modules;
using Ebp.Onnx.Modules;
using Google.Protobuf;
using Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Onnx.Internal;

internal sealed partial class GraphImporter
{
    private static AttributeProto? Attr(NodeProto n, string name) => n.Attribute.FirstOrDefault(a => a.Name == name);
    private static long Int(NodeProto n, string name, long fallback) => Attr(n, name) is { } a ? a.I : fallback;
    private static float Float(NodeProto n, string name, float fallback) => Attr(n, name) is { } a ? a.F : fallback;
    private static string Str(NodeProto n, string name, string fallback) => Attr(n, name) is { } a ? a.S.ToStringUtf8() : fallback;
    private static long[]? Ints(NodeProto n, string name) => Attr(n, name) is { } a ? a.Ints.ToArray() : null;
    private static bool Has(NodeProto n, int i) => n.Input.Count > i && n.Input[i].Length > 0;

    private static readonly HashSet<string> ShapeArithmetic =
        ["Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Reshape", "Slice", "ConstantOfShape", "Transpose",
         "Add", "Sub", "Mul", "Div", "Identity", "Range", "Flatten"];

    private void BuildNode(NodeProto node, int index)
    {
        if (node.Domain is not ("" or "ai.onnx")) throw Unsupported(node);
        // Only the first output of multi-output operators (Dropout's mask, MaxPool's indices) may be used.
        for (int o = 1; o < node.Output.Count; o++)
            if (node.Output[o].Length > 0 && (_consumers.ContainsKey(node.Output[o]) || _graph.Output.Any(g => g.Name == node.Output[o])))
                throw Fail(node, $"its output {o} '{node.Output[o]}' is used; only the first output is supported");
        foreach (var i in node.Input)
            if (i.Length > 0 && !HasValue(i))
                throw Fail(node, $"input '{i}' is missing: no initializer, graph input or earlier node provides it");

        switch (node.OpType)
        {
            case "Constant": _consts[node.Output[0]] = ConstantValue(node); return;
            case "Identity": case "Dropout":
                if (node.OpType == "Dropout" && Int(node, "training_mode", 0) != 0) throw Fail(node, "training-mode dropout");
                _alias[node.Output[0]] = Resolve(node.Input[0]);
                return;
        }

        var inputs = node.Input.Where(i => i.Length > 0).ToArray();
        bool anyActivation = inputs.Any(IsActivation);
        if (!anyActivation || node.OpType == "Shape")
        {
            if (!ShapeArithmetic.Contains(node.OpType)) throw Unsupported(node, "this operator is not supported on constants or shapes");
            if (node.OpType != "Shape" && node.Input.Where(i => i.Length > 0).All(IsConst))
            {
                _consts[node.Output[0]] = EvalShapeOp(node, node.Input.Select(i => i.Length > 0 ? Value(i) : null!).ToArray());
                return;
            }
            var op = node;
            var names = node.Input.ToArray();
            _aux.Add(node.Output[0]);
            AddStep(node, node.Name, names.Select(n => n.Length > 0 ? n : InputName).ToArray(), node.Output[0],
                    a => EvalShapeOp(op, a.Select((t, i) => names[i].Length > 0 ? t : null!).ToArray()), null);
            return;
        }

        switch (node.OpType)
        {
            case "Conv": BuildConv(node, index); break;
            case "Gemm": BuildGemm(node, index); break;
            case "MatMul": BuildMatMul(node, index); break;
            case "Add" or "Sub" or "Mul" or "Div": BuildArithmetic(node, index); break;
            case "BatchNormalization": BuildBatchNorm(node, index); break;
            case "Relu": Simple(node, index, nn.ReLU()); break;
            case "LeakyRelu": Simple(node, index, nn.LeakyReLU(Float(node, "alpha", 0.01f))); break;
            case "Sigmoid": Simple(node, index, nn.Sigmoid()); break;
            case "HardSwish": Simple(node, index, nn.Hardswish()); break;
            case "HardSigmoid": SimpleNamed(node, index, n => new OnnxHardSigmoid(n, Float(node, "alpha", 0.2f), Float(node, "beta", 0.5f))); break;
            case "Clip": BuildClip(node, index); break;
            case "Softmax":
                SimpleNamed(node, index, n => new OnnxSoftmax(n, Int(node, "axis", _opset >= 13 ? -1 : 1), _opset >= 13)); break;
            case "MaxPool": case "AveragePool": BuildPool(node, index); break;
            case "GlobalAveragePool": case "GlobalMaxPool": BuildGlobalPool(node, index); break;
            case "Flatten":
            {
                long axis = Int(node, "axis", 1);
                if (axis == 1) Simple(node, index, nn.Flatten(1, -1));
                else SimpleNamed(node, index, n => new OnnxFlatten(n, axis));
                break;
            }
            case "Reshape": BuildReshape(node, index); break;
            case "Squeeze": case "Unsqueeze":
            {
                long[] axes = _opset >= 13 && Has(node, 1) ? Const(node, 1).data<long>().ToArray() : Ints(node, "axes") ?? [];
                if (node.OpType == "Unsqueeze" && axes.Length == 0) throw Fail(node, "Unsqueeze without axes");
                SimpleNamed(node, index, n => node.OpType == "Squeeze" ? new OnnxSqueeze(n, axes) : new OnnxUnsqueeze(n, axes));
                break;
            }
            case "Transpose":
            {
                var perm = Ints(node, "perm") ?? Enumerable.Range(0, (int)Probe(node.Input[0]).dim()).Reverse().Select(i => (long)i).ToArray();
                SimpleNamed(node, index, n => new OnnxTranspose(n, perm));
                break;
            }
            case "Concat": BuildConcat(node, index); break;
            case "Pad": BuildPad(node, index); break;
            case "LRN":
            {
                long size = Int(node, "size", 0);
                if (size <= 0) throw Fail(node, "LRN without a size");
                Simple(node, index, nn.LocalResponseNorm(size, Float(node, "alpha", 1e-4f), Float(node, "beta", 0.75f), Float(node, "bias", 1f)));
                break;
            }
            case "Cast":
                if ((TensorProto.Types.DataType)Int(node, "to", 1) != TensorProto.Types.DataType.Float) throw Unsupported(node, "a cast of an activation to a non-float type");
                _alias[node.Output[0]] = Resolve(node.Input[0]);
                break;
            default: throw Unsupported(node);
        }
    }

    private string NameFor(NodeProto node, int index, string? weight = null) => _naming.For(node, index, weight);

    private void Simple(NodeProto node, int index, nn.Module<Tensor, Tensor> module)
    {
        var name = NameFor(node, index);
        AddModule(node, name, module, [node.Input[0]], Call(module));
    }

    private void SimpleNamed(NodeProto node, int index, Func<string, nn.Module<Tensor, Tensor>> make)
    {
        var name = NameFor(node, index);
        var module = make(name);
        AddModule(node, name, module, [node.Input[0]], Call(module));
    }

    private Tensor ConstantValue(NodeProto node)
    {
        if (Attr(node, "value") is { } v) return _file.ToTensor(v.T, $"Constant '{node.Name}'");
        if (Attr(node, "value_float") is { } f) return torch.tensor(f.F);
        if (Attr(node, "value_floats") is { } fs) return torch.tensor(fs.Floats.ToArray());
        if (Attr(node, "value_int") is { } i) return torch.tensor(i.I);
        if (Attr(node, "value_ints") is { } iss) return torch.tensor(iss.Ints.ToArray());
        throw Unsupported(node, "a Constant of this kind (sparse or string) is not supported");
    }

    // ---- convolution and dense layers ------------------------------------------------------------------------

    private void BuildConv(NodeProto node, int index)
    {
        var w = Const(node, 1);
        int dims = (int)w.dim() - 2;
        if (dims is < 1 or > 3) throw Fail(node, $"a weight of rank {w.dim()}");
        var x = Probe(node.Input[0]);
        long groups = Int(node, "group", 1);
        long outC = w.shape[0], inC = w.shape[1] * groups;
        if (x.dim() != dims + 2 || x.shape[1] != inC)
            throw Fail(node, $"input shape [{string.Join(", ", x.shape)}] does not fit weight [{string.Join(", ", w.shape)}] with {groups} groups");
        var kernel = w.shape.Skip(2).ToArray();
        var strides = Ints(node, "strides") ?? Enumerable.Repeat(1L, dims).ToArray();
        var dilations = Ints(node, "dilations") ?? Enumerable.Repeat(1L, dims).ToArray();
        var pads = ResolvePads(node, x, kernel, strides, dilations);
        var name = NameFor(node, index, node.Input[1]);
        string input = node.Input[0];
        long[] symmetric = new long[dims];
        if (!IsSymmetric(pads, out symmetric))
        {
            var padName = _naming.Unique(name + "_pad");
            var pad = new OnnxPad(padName, [0, 0, .. pads[..dims], 0, 0, .. pads[dims..]], PaddingModes.Constant, 0);
            AddModule(node, padName, pad, [input], Call(pad), output: node.Output[0] + "#pad");
            input = node.Output[0] + "#pad";
            symmetric = new long[dims];
        }
        bool bias = Has(node, 2);
        Convolution conv = dims switch
        {
            1 => nn.Conv1d(inC, outC, kernel[0], strides[0], symmetric[0], dilations[0], groups: groups, bias: bias),
            2 => nn.Conv2d(inC, outC, (kernel[0], kernel[1]), (strides[0], strides[1]), (symmetric[0], symmetric[1]), (dilations[0], dilations[1]), groups: groups, bias: bias),
            _ => nn.Conv3d(inC, outC, (kernel[0], kernel[1], kernel[2]), (strides[0], strides[1], strides[2]), (symmetric[0], symmetric[1], symmetric[2]), (dilations[0], dilations[1], dilations[2]), groups: groups, bias: bias),
        };
        conv.weight!.copy_(w);
        if (bias) conv.bias!.copy_(Const(node, 2).reshape(outC));
        var module = (nn.Module<Tensor, Tensor>)conv;
        AddModule(node, name, conv, [input], Call(module));
    }

    /// <summary>ONNX pads <c>[b1.., e1..]</c> from <c>pads</c> or <c>auto_pad</c> (SAME from the probe size, which is fixed).</summary>
    private long[] ResolvePads(NodeProto node, Tensor x, long[] kernel, long[] strides, long[] dilations)
    {
        int dims = kernel.Length;
        var autoPad = Str(node, "auto_pad", "NOTSET");
        switch (autoPad)
        {
            case "NOTSET": case "":
                var pads = Ints(node, "pads") ?? new long[2 * dims];
                if (pads.Length != 2 * dims) throw Fail(node, $"{pads.Length} pads for {dims} spatial dimensions");
                return pads;
            case "VALID": return new long[2 * dims];
            case "SAME_UPPER": case "SAME_LOWER":
            {
                var result = new long[2 * dims];
                for (int i = 0; i < dims; i++)
                {
                    long n = x.shape[2 + i], outSize = (n + strides[i] - 1) / strides[i];
                    long total = Math.Max(0, (outSize - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - n);
                    long small = total / 2, large = total - small;
                    (result[i], result[dims + i]) = autoPad == "SAME_UPPER" ? (small, large) : (large, small);
                }
                return result;
            }
            default: throw Fail(node, $"auto_pad '{autoPad}'");
        }
    }

    private static bool IsSymmetric(long[] pads, out long[] symmetric)
    {
        int dims = pads.Length / 2;
        symmetric = pads[..dims];
        for (int i = 0; i < dims; i++) if (pads[i] != pads[dims + i]) return false;
        return true;
    }

    private void BuildGemm(NodeProto node, int index)
    {
        if (Int(node, "transA", 0) != 0) throw Fail(node, "transA = 1 on an activation (the batch must stay the first dimension)");
        var b = Const(node, 1);
        if (b.dim() != 2) throw Fail(node, "B is not a matrix");
        float alpha = Float(node, "alpha", 1f), beta = Float(node, "beta", 1f);
        using var weight = (Int(node, "transB", 0) != 0 ? b : b.t()).mul(alpha).contiguous();
        Tensor? bias = null;
        if (Has(node, 2))
        {
            var c = Const(node, 2);
            if (c.numel() != 1 && c.numel() != weight.shape[0] || c.dim() == 2 && c.shape[0] != 1)
                throw Fail(node, $"C of shape [{string.Join(", ", c.shape)}] is not a bias of {weight.shape[0]} outputs");
            bias = c.expand(weight.shape[0]).mul(beta);
        }
        BuildLinear(node, index, node.Input[0], weight, bias, node.Output[0], node.Input[1]);
        bias?.Dispose();
    }

    private void BuildLinear(NodeProto node, int index, string input, Tensor weight, Tensor? bias, string output, string weightName)
    {
        var x = Probe(input);
        if (x.shape[^1] != weight.shape[1])
            throw Fail(node, $"input [{string.Join(", ", x.shape)}] does not fit a weight of {weight.shape[1]} inputs");
        var linear = nn.Linear(weight.shape[1], weight.shape[0], hasBias: bias is not null);
        linear.weight!.copy_(weight);
        if (bias is not null) linear.bias!.copy_(bias.reshape(weight.shape[0]));
        var name = NameFor(node, index, weightName);
        AddModule(node, name, linear, [input], Call(linear), output);
    }

    private void BuildMatMul(NodeProto node, int index)
    {
        if (!IsConst(node.Input[1])) { BuildUnsupportedBinary(node, index, "MatMul of two activations"); return; }
        var b = Const(node, 1);
        if (b.dim() != 2) throw Fail(node, "B is not a matrix");
        using var weight = b.t().contiguous();
        // MatMul followed by Add of a constant vector is a dense layer with bias: fold the Add in.
        var output = node.Output[0];
        Tensor? bias = null;
        int addIndex = -1;
        if (_consumers.GetValueOrDefault(output) == 1 && !_graph.Output.Any(o => o.Name == output))
        {
            for (int j = index + 1; j < _graph.Node.Count; j++)
            {
                var next = _graph.Node[j];
                if (!next.Input.Contains(output)) continue;
                var other = next.Input.Count == 2 ? next.Input[next.Input[0] == output ? 1 : 0] : null;
                if (next.OpType == "Add" && other is not null && IsConst(other) && Value(other).numel() == weight.shape[0])
                {
                    bias = Value(other);
                    addIndex = j;
                }
                break;
            }
        }
        if (addIndex >= 0)
        {
            var add = _graph.Node[addIndex];
            _skipped.Add(add.Name + "#" + addIndex);
            output = add.Output[0];
        }
        BuildLinear(node, index, node.Input[0], weight, bias, output, node.Input[1]);
    }

    // ---- element-wise --------------------------------------------------------------------------------------

    private void BuildArithmetic(NodeProto node, int index)
    {
        var op = Enum.Parse<ElementwiseOp>(node.OpType);
        bool a = IsActivation(node.Input[0]), b = IsActivation(node.Input[1]);
        if (a && b)
        {
            if (op != ElementwiseOp.Add) { BuildUnsupportedBinary(node, index, null); return; }
            var name = NameFor(node, index);
            var sum = new ResidualSum(name);
            AddModule(node, name, sum, [node.Input[0], node.Input[1]], x => sum.call(x[0], x[1]));
            return;
        }
        var constName = a ? node.Input[1] : node.Input[0];
        if (_aux.Contains(Resolve(constName))) throw Fail(node, "an activation combined with a shape computed at run time");
        var constant = Value(constName).to_type(ScalarType.Float32).clone();
        SimpleNamedOn(node, index, a ? node.Input[0] : node.Input[1], n => new ConstantArithmetic(n, op, constant, constantFirst: !a));
    }

    private void SimpleNamedOn(NodeProto node, int index, string input, Func<string, nn.Module<Tensor, Tensor>> make)
    {
        var name = NameFor(node, index);
        var module = make(name);
        AddModule(node, name, module, [input], Call(module));
    }

    private void BuildUnsupportedBinary(NodeProto node, int index, string? _)
    {
        if (!Enum.TryParse<ElementwiseOp>(node.OpType, out var op)) throw Unsupported(node, "MatMul of two activations has no Excitation Backprop rule and is not supported");
        var name = NameFor(node, index);
        var module = new UnsupportedElementwise(name, op);
        AddModule(node, name, module, [node.Input[0], node.Input[1]], x =>
        {
            using var stacked = UnsupportedElementwise.Stack(x[0], x[1]);
            return module.call(stacked);
        });
    }

    private void BuildBatchNorm(NodeProto node, int index)
    {
        if (Int(node, "training_mode", 0) != 0) throw Fail(node, "training-mode BatchNormalization");
        var x = Probe(node.Input[0]);
        var scale = Const(node, 1);
        long c = scale.numel();
        double eps = Float(node, "epsilon", 1e-5f);
        var name = NameFor(node, index, node.Input[1]);
        nn.Module<Tensor, Tensor> bn = x.dim() switch
        {
            2 or 3 => nn.BatchNorm1d(c, eps),
            4 => nn.BatchNorm2d(c, eps),
            5 => nn.BatchNorm3d(c, eps),
            _ => throw Fail(node, $"an input of rank {x.dim()}"),
        };
        var norm = (NormBase)bn;
        norm.weight!.copy_(scale.reshape(c));
        norm.bias!.copy_(Const(node, 2).reshape(c));
        norm.running_mean!.copy_(Const(node, 3).reshape(c));
        norm.running_var!.copy_(Const(node, 4).reshape(c));
        bn.eval();
        AddModule(node, name, bn, [node.Input[0]], Call(bn));
    }

    private void BuildClip(NodeProto node, int index)
    {
        double? min, max;
        if (_opset < 11)
        {
            min = Attr(node, "min") is { } a ? a.F : null;
            max = Attr(node, "max") is { } b ? b.F : null;
        }
        else
        {
            min = Has(node, 1) ? Const(node, 1).ToSingle() : null;
            max = Has(node, 2) ? Const(node, 2).ToSingle() : null;
        }
        if (min == 0 && max == 6) Simple(node, index, nn.ReLU6());
        else if (min == 0 && max is null) Simple(node, index, nn.ReLU());
        else SimpleNamed(node, index, n => new OnnxClip(n, min, max));
    }

    // ---- pooling -------------------------------------------------------------------------------------------

    private void BuildPool(NodeProto node, int index)
    {
        var x = Probe(node.Input[0]);
        var kernel = Ints(node, "kernel_shape") ?? throw Fail(node, "no kernel_shape");
        int dims = kernel.Length;
        if (x.dim() != dims + 2) throw Fail(node, $"an input of rank {x.dim()} for a {dims}-D kernel");
        var strides = Ints(node, "strides") ?? Enumerable.Repeat(1L, dims).ToArray();
        var dilations = Ints(node, "dilations") ?? Enumerable.Repeat(1L, dims).ToArray();
        if (dilations.Any(d => d != 1) && node.OpType == "AveragePool") throw Fail(node, "dilated average pooling");
        bool ceil = Int(node, "ceil_mode", 0) != 0;
        bool max = node.OpType == "MaxPool";
        bool countPad = Int(node, "count_include_pad", 0) != 0;
        if (max && Int(node, "storage_order", 0) != 0) throw Fail(node, "storage_order = 1");
        var pads = ResolvePads(node, x, kernel, strides, dilations);
        var name = NameFor(node, index);
        string input = node.Input[0];
        bool fits = IsSymmetric(pads, out var sym) && sym.Select((p, i) => p <= kernel[i] / 2).All(v => v);
        if (!fits)
        {
            if (!max && !countPad)
            {
                if (dims != 2 || ceil) throw Fail(node, "asymmetric pads with count_include_pad = 0 outside 2-D pooling without ceil_mode");
                SimpleNamed(node, index, n => new PaddedAveragePool(n, kernel, strides, pads));
                return;
            }
            // Pad explicitly: −∞ for max pooling, 0 for average pooling that counts the padding.
            var padName = _naming.Unique(name + "_pad");
            var pad = new OnnxPad(padName, [0, 0, .. pads[..dims], 0, 0, .. pads[dims..]], PaddingModes.Constant, max ? double.NegativeInfinity : 0);
            AddModule(node, padName, pad, [input], Call(pad), output: node.Output[0] + "#pad");
            input = node.Output[0] + "#pad";
            sym = new long[dims];
        }
        nn.Module<Tensor, Tensor> pool = (max, dims) switch
        {
            (true, 1) => nn.MaxPool1d(kernel[0], strides[0], sym[0], dilations[0], ceil),
            (true, 2) => nn.MaxPool2d((kernel[0], kernel[1]), (strides[0], strides[1]), (sym[0], sym[1]), (dilations[0], dilations[1]), ceil),
            (true, 3) => nn.MaxPool3d((kernel[0], kernel[1], kernel[2]), (strides[0], strides[1], strides[2]), (sym[0], sym[1], sym[2]), (dilations[0], dilations[1], dilations[2]), ceil),
            (false, 1) => nn.AvgPool1d(kernel[0], strides[0], sym[0], ceil, countPad),
            (false, 2) => nn.AvgPool2d((kernel[0], kernel[1]), (strides[0], strides[1]), (sym[0], sym[1]), ceil, countPad),
            (false, 3) => nn.AvgPool3d((kernel[0], kernel[1], kernel[2]), (strides[0], strides[1], strides[2]), (sym[0], sym[1], sym[2]), ceil, countPad),
            _ => throw Fail(node, $"{dims}-D pooling"),
        };
        AddModule(node, name, pool, [input], Call(pool));
    }

    private void BuildGlobalPool(NodeProto node, int index)
    {
        var x = Probe(node.Input[0]);
        bool max = node.OpType == "GlobalMaxPool";
        nn.Module<Tensor, Tensor> pool = (max, x.dim()) switch
        {
            (false, 3) => nn.AdaptiveAvgPool1d(1),
            (false, 4) => nn.AdaptiveAvgPool2d(1),
            (false, 5) => nn.AdaptiveAvgPool3d(1),
            (true, 3) => nn.AdaptiveMaxPool1d(1),
            (true, 4) => nn.AdaptiveMaxPool2d(new long[] { 1, 1 }),
            (true, 5) => nn.AdaptiveMaxPool3d(new long[] { 1, 1, 1 }),
            _ => throw Fail(node, $"an input of rank {x.dim()}"),
        };
        Simple(node, index, pool);
    }

    // ---- shapes --------------------------------------------------------------------------------------------

    private void BuildReshape(NodeProto node, int index)
    {
        bool allowZero = Int(node, "allowzero", 0) != 0;
        var name = NameFor(node, index);
        if (_opset < 5 || !Has(node, 1)) throw Fail(node, "Reshape without a shape input");
        var shapeName = Resolve(node.Input[1]);
        if (IsConst(shapeName))
        {
            var module = new OnnxReshape(name, Value(shapeName).data<long>().ToArray(), allowZero);
            AddModule(node, name, module, [node.Input[0]], Call(module));
            return;
        }
        if (!_aux.Contains(shapeName)) throw Fail(node, "a shape computed from activations");
        // Shape → Gather → Unsqueeze → Concat → Reshape (older PyTorch flatten): the shape is known at each call.
        var dynamic = new OnnxReshape(name, Value(shapeName).data<long>().ToArray(), allowZero);
        AddModule(node, name, dynamic, [node.Input[0], node.Input[1]], a =>
        {
            dynamic.Shape = a[1].data<long>().ToArray();
            return dynamic.call(a[0]);
        });
    }

    private void BuildConcat(NodeProto node, int index)
    {
        long axis = Int(node, "axis", 1);
        var name = NameFor(node, index);
        var inputs = node.Input.ToArray();
        if (inputs.Length == 2)
        {
            var pair = new OnnxConcat2(name, axis);
            AddModule(node, name, pair, inputs, a => pair.call(a[0], a[1]));
        }
        else
        {
            var many = new OnnxConcat(name, axis);
            AddModule(node, name, many, inputs, a => many.call(a));
        }
    }

    private void BuildPad(NodeProto node, int index)
    {
        var mode = Str(node, "mode", "constant");
        long[] pads;
        double value = 0;
        if (_opset < 11)
        {
            pads = Ints(node, "pads") ?? throw Fail(node, "no pads");
            value = Float(node, "value", 0f);
        }
        else
        {
            if (Has(node, 3)) throw Fail(node, "the axes input");
            pads = Const(node, 1).data<long>().ToArray();
            if (Has(node, 2)) value = Const(node, 2).to_type(ScalarType.Float64).ToDouble();
        }
        var padMode = mode switch
        {
            "constant" => PaddingModes.Constant,
            "reflect" => PaddingModes.Reflect,
            "edge" => PaddingModes.Replicate,
            _ => throw Fail(node, $"mode '{mode}'"),
        };
        SimpleNamed(node, index, n => new OnnxPad(n, pads, padMode, value));
    }

    /// <summary>Shape arithmetic on small integer tensors (also used to fold constants at import time).</summary>
    private Tensor EvalShapeOp(NodeProto node, Tensor?[] x)
    {
        switch (node.OpType)
        {
            case "Shape":
            {
                var shape = x[0]!.shape;
                long start = Int(node, "start", 0), end = Int(node, "end", shape.Length);
                if (start < 0) start += shape.Length;
                if (end < 0) end += shape.Length;
                start = Math.Clamp(start, 0, shape.Length);
                end = Math.Clamp(end, start, shape.Length);
                return torch.tensor(shape[(int)start..(int)end]);
            }
            case "Gather":
            {
                long axis = Int(node, "axis", 0);
                var data = x[0]!;
                if (axis < 0) axis += data.dim();
                using var idx = x[1]!.to_type(ScalarType.Int64);
                using var fixedIdx = torch.where(idx.lt(0), idx.add(data.shape[axis]), idx);
                using var flat = fixedIdx.flatten();
                using var picked = data.index_select(axis, flat);
                var outShape = data.shape.Take((int)axis).Concat(idx.shape).Concat(data.shape.Skip((int)axis + 1)).ToArray();
                return picked.reshape(outShape);
            }
            case "Unsqueeze":
            {
                long[] axes = _opset >= 13 ? x[1]!.data<long>().ToArray() : Ints(node, "axes")!;
                long rank = x[0]!.dim() + axes.Length;
                var t = x[0]!.alias();
                foreach (var a in axes.Select(a => a < 0 ? a + rank : a).Order()) { var u = t.unsqueeze(a); t.Dispose(); t = u; }
                return t;
            }
            case "Squeeze":
            {
                long[] axes = _opset >= 13 ? (x.Length > 1 && x[1] is not null ? x[1]!.data<long>().ToArray() : []) : Ints(node, "axes") ?? [];
                if (axes.Length == 0) return x[0]!.squeeze();
                var t = x[0]!.alias();
                foreach (var a in axes.Select(a => a < 0 ? a + x[0]!.dim() : a).OrderDescending()) { var u = t.squeeze(a); t.Dispose(); t = u; }
                return t;
            }
            case "Concat":
            {
                var parts = x.Where(t => t is not null && t.numel() > 0).Select(t => t!).ToArray();
                return parts.Length == 0 ? x[0]!.clone() : torch.cat(parts, Int(node, "axis", 0));
            }
            case "Cast":
            {
                var to = (TensorProto.Types.DataType)Int(node, "to", 1);
                return to is TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Double or TensorProto.Types.DataType.Float16
                    ? x[0]!.to_type(ScalarType.Float32) : x[0]!.to_type(ScalarType.Int64);
            }
            case "Reshape":
            {
                var shape = x[1]!.data<long>().ToArray();
                for (int i = 0; i < shape.Length; i++) if (shape[i] == 0 && Int(node, "allowzero", 0) == 0) shape[i] = x[0]!.shape[i];
                return x[0]!.reshape(shape).clone();
            }
            case "Flatten":
            {
                long axis = Int(node, "axis", 1);
                long outer = x[0]!.shape.Take((int)axis).Aggregate(1L, (p, d) => p * d);
                return x[0]!.reshape(outer, -1).clone();
            }
            case "Transpose":
            {
                var perm = Ints(node, "perm") ?? Enumerable.Range(0, (int)x[0]!.dim()).Reverse().Select(i => (long)i).ToArray();
                return x[0]!.permute(perm).contiguous();
            }
            case "ConstantOfShape":
            {
                var shape = x[0]!.data<long>().ToArray();
                if (shape.Aggregate(1L, (p, d) => p * d) > 1 << 20) throw Fail(node, "a ConstantOfShape of more than 2^20 elements");
                var value = Attr(node, "value") is { } v ? _file.ToTensor(v.T, $"ConstantOfShape '{node.Name}' value") : torch.tensor(0f);
                using (value) return value.reshape(1).expand(shape).clone();
            }
            case "Slice": return EvalSlice(node, x);
            case "Range":
                return torch.arange(x[0]!.ToScalar(), x[1]!.ToScalar(), x[2]!.ToScalar(), dtype: x[0]!.dtype);
            case "Identity": return x[0]!.clone();
            case "Add": return x[0]!.add(x[1]!);
            case "Sub": return x[0]!.sub(x[1]!);
            case "Mul": return x[0]!.mul(x[1]!);
            case "Div":
                return x[0]!.dtype == ScalarType.Int64 && x[1]!.dtype == ScalarType.Int64 ? x[0]!.div(x[1]!, RoundingMode.trunc) : x[0]!.div(x[1]!);
            default: throw Unsupported(node);
        }
    }

    private Tensor EvalSlice(NodeProto node, Tensor?[] x)
    {
        var data = x[0]!;
        long[] starts, ends, axes, steps;
        if (_opset < 10)
        {
            starts = Ints(node, "starts")!;
            ends = Ints(node, "ends")!;
            axes = Ints(node, "axes") ?? Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
            steps = Enumerable.Repeat(1L, starts.Length).ToArray();
        }
        else
        {
            starts = x[1]!.data<long>().ToArray();
            ends = x[2]!.data<long>().ToArray();
            axes = x.Length > 3 && x[3] is not null ? x[3]!.data<long>().ToArray() : Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
            steps = x.Length > 4 && x[4] is not null ? x[4]!.data<long>().ToArray() : Enumerable.Repeat(1L, starts.Length).ToArray();
        }
        var t = data.alias();
        for (int i = 0; i < starts.Length; i++)
        {
            long axis = axes[i] < 0 ? axes[i] + data.dim() : axes[i];
            long n = data.shape[axis], step = steps[i];
            long s = starts[i] < 0 ? starts[i] + n : starts[i], e = ends[i] < 0 ? ends[i] + n : ends[i];
            Tensor u;
            if (step > 0)
            {
                s = Math.Clamp(s, 0, n);
                e = Math.Clamp(e, 0, n);
                u = t.slice(axis, s, Math.Max(s, e), step);
            }
            else
            {
                // Negative steps (a reversal, as tf2onnx emits for pads): flip, then slice forwards.
                s = Math.Clamp(s, -1, n - 1);
                e = Math.Clamp(e, -1, n - 1);
                using var flipped = t.flip(axis);
                long fs = n - 1 - s, fe = n - 1 - e;
                u = flipped.slice(axis, fs, Math.Max(fs, fe), -step).clone();
            }
            t.Dispose();
            t = u;
        }
        return t.clone();
    }

    /// <summary>
    /// After the last node of an exporter scope (<c>layer3</c>, <c>features.3</c>) whose only live output is one
    /// tensor, a <see cref="ScopeOutput"/> named after the scope, so the stage can be named as a layer.
    /// </summary>
    private void AddScopeOutputs()
    {
        var used = new HashSet<string>(_modules.Select(m => m.Item1));
        var lastStepOfScope = new Dictionary<string, int>();
        for (int i = 0; i < _steps.Count; i++)
        {
            var scope = _steps[i].Name;
            foreach (var container in _naming.Containers)
                if (scope.StartsWith(container + ".", StringComparison.Ordinal)) lastStepOfScope[container] = i;
        }
        // Insert from the back so indices stay valid; at one position the innermost scope comes first and the
        // outer ones chain on it (layer3.5 → layer3).
        foreach (var group in lastStepOfScope.GroupBy(p => p.Value).OrderByDescending(g => g.Key))
        {
            int at = group.Key;
            var output = _steps[at].Output;
            if (!SingleLive(at, output)) continue;
            var current = output;
            int insert = at + 1;
            foreach (var scope in group.Select(p => p.Key).OrderByDescending(k => k.Length))
            {
                if (used.Contains(scope) || !_naming.TryReserve(scope)) continue;
                var module = new ScopeOutput(scope);
                var alias = output + "#" + scope;
                _modules.Add((scope, module));
                _steps.Insert(insert, new OnnxGraph.Step(scope, [current], alias, Call(module), module));
                insert++;
                // Later consumers read the marker's output.
                for (int j = insert; j < _steps.Count; j++)
                {
                    var s = _steps[j];
                    if (s.Inputs.Contains(current)) _steps[j] = s with { Inputs = s.Inputs.Select(n => n == current ? alias : n).ToArray() };
                }
                if (Resolve(LogitsName) == current) _alias[current] = alias;
                _probe[alias] = _probe[current].alias();
                current = alias;
            }
        }
    }

    /// <summary>True when no activation made before step <paramref name="at"/> other than <paramref name="output"/> is read after it.</summary>
    private bool SingleLive(int at, string output)
    {
        for (int j = at + 1; j < _steps.Count; j++)
            foreach (var i in _steps[j].Inputs)
                if (i != output && !_aux.Contains(i) && !_consts.ContainsKey(i) && _producerStep.TryGetValue(i, out var p) && p <= at) return false;
        foreach (var i in _steps.Skip(at + 1).SelectMany(s => s.Inputs))
            if (i == InputName) return false;
        return true;
    }
}
