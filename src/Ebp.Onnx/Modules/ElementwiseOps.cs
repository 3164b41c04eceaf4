using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Onnx.Modules;

/// <summary>The arithmetic of an ONNX element-wise node.</summary>
internal enum ElementwiseOp { Add, Sub, Mul, Div }

/// <summary>
/// Add/Sub/Mul/Div of an activation and a constant (a bias, the input normalisation). Parameterless, so
/// Excitation Backprop passes its ordinary gradient.
/// </summary>
internal sealed class ConstantArithmetic : nn.Module<Tensor, Tensor>
{
    private readonly Tensor constant;
    private readonly ElementwiseOp _op;
    private readonly bool _constantFirst;

    public ConstantArithmetic(string name, ElementwiseOp op, Tensor constant, bool constantFirst) : base(name)
    {
        _op = op;
        _constantFirst = constantFirst;
        this.constant = constant;
        register_buffer("constant", constant, persistent: false);
    }

    public override Tensor forward(Tensor x)
    {
        var (a, b) = _constantFirst ? (constant, x) : (x, constant);
        return _op switch
        {
            ElementwiseOp.Add => a.add(b),
            ElementwiseOp.Sub => a.sub(b),
            ElementwiseOp.Mul => a.mul(b),
            _ => a.div(b),
        };
    }
}

/// <summary>
/// An element-wise product, quotient or difference of two activations (squeeze-excitation gates, attention):
/// no Excitation Backprop rule exists for it. It holds an empty parameter so that the engine classifies it as a
/// layer without a rule: a saliency pass through it is an error naming it, unless its plain gradient is allowed
/// (<c>PlainGradientLayers</c> / <c>PlainGradientForUnsupportedLayers</c>). Its input is the two operands
/// broadcast and stacked, so the engine sees it as a one-input layer.
/// </summary>
internal sealed class UnsupportedElementwise : nn.Module<Tensor, Tensor>
{
    private readonly ElementwiseOp _op;
#pragma warning disable IDE0052 // registered for the engine's classification, never read
    private readonly TorchSharp.Modules.Parameter no_ebp_rule;
#pragma warning restore IDE0052

    /// <summary>The ONNX op type this module computes.</summary>
    public string OpType => _op.ToString();

    public UnsupportedElementwise(string name, ElementwiseOp op) : base(name)
    {
        _op = op;
        no_ebp_rule = new TorchSharp.Modules.Parameter(torch.empty(0), requires_grad: false);
        register_parameter("no_ebp_rule", no_ebp_rule);
    }

    /// <summary>Stacks two operands as this module's input.</summary>
    public static Tensor Stack(Tensor a, Tensor b)
    {
        var both = torch.broadcast_tensors(a, b);
        return torch.stack(both, 0);
    }

    public override Tensor forward(Tensor stacked)
    {
        using var a = stacked[0];
        using var b = stacked[1];
        return _op switch
        {
            ElementwiseOp.Add => a.add(b),
            ElementwiseOp.Sub => a.sub(b),
            ElementwiseOp.Mul => a.mul(b),
            _ => a.div(b),
        };
    }
}
