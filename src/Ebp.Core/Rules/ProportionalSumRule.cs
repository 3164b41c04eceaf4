using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Rules;

/// <summary>
/// The residual sum <c>y = a + b</c> splits the signal in proportion to each input's share:
/// <c>G_a = (a ⊘ y) ⊙ G</c>, <c>G_b = (b ⊘ y) ⊙ G</c> (no epsilon, ratios may be negative or above 1).
/// Where y is exactly 0 the reference produces 0/0 = NaN over the whole map; Ebp instead splits the
/// signal evenly there (<c>G/2</c> to each side), which keeps the map finite and conserves the signal.
/// Behind a ReLU the signal at such a position is 0 anyway, so the choice changes nothing else.
/// </summary>
internal static class ProportionalSumRule
{
    public static Tensor Attach(RuleScope scope, string name, Tensor a, Tensor b, Tensor output)
        => ProportionalSumFunction.apply(a, b, new SumNode(scope, name, scope.Keep(a.detach()), scope.Keep(b.detach()), scope.Keep(output.detach())))[0];
}

internal sealed record SumNode(RuleScope Scope, string Name, Tensor A, Tensor B, Tensor Output);

internal sealed class ProportionalSumFunction : torch.autograd.MultiTensorFunction<ProportionalSumFunction>
{
    public override string Name => "EbpProportionalSum";

    public override List<Tensor> forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var node = (SumNode)vars[2];
        ctx.save_data("node", node);
        return new List<Tensor> { node.Output.detach() };
    }

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, List<Tensor> grad_outputs)
    {
        var node = (SumNode)ctx.get_data("node");
        var g = grad_outputs[0];
        return BackwardGuard.Run(node.Scope, node.Name, () =>
        {
            using var scope = torch.NewDisposeScope();
            var y = node.Output;
            var zero = y.eq(Scalars.Zero);
            bool anyZero = zero.any().item<bool>();
            // One division serves both branches: G_a = a ⊙ (G ⊘ y), G_b = b ⊙ (G ⊘ y).
            var ratio = g.div(anyZero ? torch.where(zero, torch.ones_like(y), y) : y);
            var ga = node.A.mul(ratio);
            var gb = node.B.mul(ratio);
            if (anyZero)
            {
                var halfG = g.mul(Scalars.Half);
                ga = torch.where(zero, halfG, ga);
                gb = torch.where(zero, halfG, gb);
            }
            ga = SumToShape(ga, node.A.shape);
            gb = SumToShape(gb, node.B.shape);
            return new List<Tensor> { ga.MoveToOuterDisposeScope(), gb.MoveToOuterDisposeScope(), null! };
        }, () => new List<Tensor> { torch.zeros_like(node.A), torch.zeros_like(node.B), null! });
    }

    /// <summary>Undo broadcasting, should a caller add tensors of different shapes.</summary>
    private static Tensor SumToShape(Tensor t, long[] shape)
    {
        if (t.shape.SequenceEqual(shape)) return t;
        while (t.dim() > shape.Length) t = t.sum(0);
        for (int d = 0; d < shape.Length; d++)
            if (shape[d] == 1 && t.shape[d] != 1) t = t.sum(d, keepdim: true);
        return t;
    }
}
