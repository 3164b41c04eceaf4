using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Onnx.Modules;

/// <summary>A Softmax inside the graph (a final one is the head and left out). Before opset 13 it normalises over the flattened trailing dimensions.</summary>
internal sealed class OnnxSoftmax : nn.Module<Tensor, Tensor>
{
    private readonly long _axis;
    private readonly bool _singleAxis;
    public OnnxSoftmax(string name, long axis, bool singleAxis) : base(name) { _axis = axis; _singleAxis = singleAxis; }

    public override Tensor forward(Tensor input)
    {
        long axis = _axis < 0 ? _axis + input.dim() : _axis;
        if (_singleAxis || axis == input.dim() - 1) return input.softmax(axis);
        var shape = input.shape;
        using var flat = input.reshape(shape.Take((int)axis).Append(-1).ToArray());
        using var soft = flat.softmax(-1);
        return soft.reshape(shape);
    }
}
