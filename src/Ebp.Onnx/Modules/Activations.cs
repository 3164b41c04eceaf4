using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Onnx.Modules;

/// <summary>ONNX <c>Clip</c> with bounds other than ReLU's or ReLU6's.</summary>
internal sealed class OnnxClip : nn.Module<Tensor, Tensor>
{
    private readonly double? _min, _max;
    public OnnxClip(string name, double? min, double? max) : base(name) { _min = min; _max = max; }

    public override Tensor forward(Tensor input) => (_min, _max) switch
    {
        ({ } lo, { } hi) => input.clamp(lo, hi),
        ({ } lo, null) => input.clamp_min(lo),
        (null, { } hi) => input.clamp_max(hi),
        _ => input.alias(),
    };
}

/// <summary>ONNX <c>HardSigmoid</c>: <c>max(0, min(1, alpha·x + beta))</c> (defaults 0.2, 0.5, unlike PyTorch's 1/6).</summary>
internal sealed class OnnxHardSigmoid : nn.Module<Tensor, Tensor>
{
    private readonly double _alpha, _beta;
    public OnnxHardSigmoid(string name, double alpha, double beta) : base(name) { _alpha = alpha; _beta = beta; }

    public override Tensor forward(Tensor input)
    {
        using var scaled = input.mul(_alpha);
        using var shifted = scaled.add(_beta);
        return shifted.clamp(0.0, 1.0);
    }
}
