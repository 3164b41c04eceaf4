using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Onnx.Modules;

/// <summary>ONNX <c>Reshape</c>: 0 copies the input's dimension (unless allowzero), −1 is inferred.</summary>
internal sealed class OnnxReshape : nn.Module<Tensor, Tensor>
{
    private readonly bool _allowZero;

    /// <summary>The target shape; set by the graph before each call when the shape is computed at run time.</summary>
    public long[] Shape { get; set; }

    public OnnxReshape(string name, long[] shape, bool allowZero) : base(name) { Shape = shape; _allowZero = allowZero; }

    public override Tensor forward(Tensor input)
    {
        var shape = (long[])Shape.Clone();
        if (!_allowZero)
            for (int i = 0; i < shape.Length; i++) if (shape[i] == 0) shape[i] = input.shape[i];
        return input.reshape(shape);
    }
}

/// <summary>ONNX <c>Flatten</c>: a 2-D view, dimensions before <c>axis</c> into the first.</summary>
internal sealed class OnnxFlatten : nn.Module<Tensor, Tensor>
{
    private readonly long _axis;
    public OnnxFlatten(string name, long axis) : base(name) => _axis = axis;

    public override Tensor forward(Tensor input)
    {
        long axis = _axis < 0 ? _axis + input.dim() : _axis;
        long outer = 1;
        for (int i = 0; i < axis; i++) outer *= input.shape[i];
        return input.reshape(outer, -1);
    }
}

/// <summary>ONNX <c>Transpose</c> (for example NHWC → NCHW after a TensorFlow export).</summary>
internal sealed class OnnxTranspose : nn.Module<Tensor, Tensor>
{
    private readonly long[] _perm;
    public OnnxTranspose(string name, long[] perm) : base(name) => _perm = perm;
    public override Tensor forward(Tensor input) => input.permute(_perm).contiguous();
}

/// <summary>ONNX <c>Squeeze</c> (<c>axes</c> empty: every dimension of size 1).</summary>
internal sealed class OnnxSqueeze : nn.Module<Tensor, Tensor>
{
    private readonly long[] _axes;
    public OnnxSqueeze(string name, long[] axes) : base(name) => _axes = axes;

    public override Tensor forward(Tensor input)
    {
        if (_axes.Length == 0) return input.squeeze();
        var dims = _axes.Select(a => a < 0 ? a + input.dim() : a).OrderDescending().ToArray();
        var x = input.alias();
        foreach (var d in dims) { var y = x.squeeze(d); x.Dispose(); x = y; }
        return x;
    }
}

/// <summary>ONNX <c>Unsqueeze</c>: axes refer to the output's rank.</summary>
internal sealed class OnnxUnsqueeze : nn.Module<Tensor, Tensor>
{
    private readonly long[] _axes;
    public OnnxUnsqueeze(string name, long[] axes) : base(name) => _axes = axes;

    public override Tensor forward(Tensor input)
    {
        long rank = input.dim() + _axes.Length;
        var dims = _axes.Select(a => a < 0 ? a + rank : a).Order().ToArray();
        var x = input.alias();
        foreach (var d in dims) { var y = x.unsqueeze(d); x.Dispose(); x = y; }
        return x;
    }
}

/// <summary>ONNX <c>Concat</c> of two tensors (a pair module, so a hook can see its output).</summary>
internal sealed class OnnxConcat2 : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly long _axis;
    public OnnxConcat2(string name, long axis) : base(name) => _axis = axis;
    public override Tensor forward(Tensor a, Tensor b) => torch.cat(new[] { a, b }, _axis);
}

/// <summary>ONNX <c>Concat</c> of three or more tensors.</summary>
internal sealed class OnnxConcat : nn.Module<Tensor[], Tensor>
{
    private readonly long _axis;
    public OnnxConcat(string name, long axis) : base(name) => _axis = axis;
    public override Tensor forward(Tensor[] inputs) => torch.cat(inputs, _axis);
}

/// <summary>ONNX <c>Pad</c> (constant, reflect or edge), pads in ONNX order <c>[b1, b2, …, e1, e2, …]</c>.</summary>
internal sealed class OnnxPad : nn.Module<Tensor, Tensor>
{
    private readonly long[] _pads;
    private readonly PaddingModes _mode;
    private readonly double _value;

    public OnnxPad(string name, long[] onnxPads, PaddingModes mode, double value) : base(name)
    {
        _mode = mode;
        _value = value;
        // torch pads the last dimension first: (begin_last, end_last, begin_last-1, ...).
        int n = onnxPads.Length / 2;
        var pads = new List<long>();
        for (int i = n - 1; i >= 0; i--) { pads.Add(onnxPads[i]); pads.Add(onnxPads[n + i]); }
        // Trailing all-zero pairs of leading dimensions are dropped: reflect/replicate accept only spatial pairs.
        while (pads.Count > 2 && pads[^1] == 0 && pads[^2] == 0) pads.RemoveRange(pads.Count - 2, 2);
        _pads = pads.ToArray();
    }

    public override Tensor forward(Tensor input) => nn.functional.pad(input, _pads, _mode, _value);
}

/// <summary>
/// Marks the output of a scope of the exporting framework (a torchvision stage such as <c>layer3</c>, a fire
/// module): an alias, so that the stage can be named as saliency or contrast layer.
/// </summary>
internal sealed class ScopeOutput : nn.Module<Tensor, Tensor>
{
    public ScopeOutput(string name) : base(name) { }
    public override Tensor forward(Tensor input) => input.alias();
}
