using Ebp.Composites;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Rules;

/// <summary>
/// The autograd side of <see cref="ProportionalSplitRule"/> for <c>y = a + b</c>. With δ = 0 it is the reference's
/// <c>G_a = (a ⊘ y) ⊙ G</c>, except where y is exactly 0: the reference gives 0/0 = NaN over the whole map there,
/// Ebp splits the signal evenly (<c>G/2</c> to each side). Behind a ReLU the signal at such a position is 0 anyway.
/// </summary>
internal static class ProportionalSplitBackward
{
    public static Tensor Attach(RuleScope scope, string name, Tensor a, Tensor b, Tensor output)
    {
        var rule = scope.AssignedRule(name) as ProportionalSplitRule ?? LayerRule.ProportionalSum;
        var node = new SumNode(scope, name, rule, scope.Keep(a.detach()), scope.Keep(b.detach()), scope.Keep(output.detach()));
        return ProportionalSumFunction.apply(a, b, node)[0];
    }

    /// <summary>(G_a, G_b) for one backward pass, before broadcasting is undone.</summary>
    public static (Tensor Ga, Tensor Gb) Split(Tensor a, Tensor b, Tensor y, Tensor g, ProportionalSplitRule rule)
        => rule.Stabiliser == 0 ? Plain(a, b, y, g) : Stabilised(a, b, y, g, rule.Stabiliser);

    private static (Tensor, Tensor) Plain(Tensor a, Tensor b, Tensor y, Tensor g)
    {
        var zero = y.eq(Scalars.Zero);
        bool anyZero = zero.any().item<bool>();
        // One division serves both branches: G_a = a ⊙ (G ⊘ y), G_b = b ⊙ (G ⊘ y).
        var ratio = g.div(anyZero ? torch.where(zero, torch.ones_like(y), y) : y);
        var ga = a.mul(ratio);
        var gb = b.mul(ratio);
        if (!anyZero) return (ga, gb);
        var halfG = g.mul(Scalars.Half);
        return (torch.where(zero, halfG, ga), torch.where(zero, halfG, gb));
    }

    /// <summary>
    /// G_a = (â·ŷ³ + δ⁴/2) ⊘ (ŷ⁴ + δ⁴) ⊙ G with â = a/m, ŷ = y/m, m = |a| + |b|: the documented form with (δm)⁴, but on
    /// values of order 1, so that tiny branches (1e-30) do not underflow when raised to the fourth power.
    /// </summary>
    private static (Tensor, Tensor) Stabilised(Tensor a, Tensor b, Tensor y, Tensor g, double delta)
    {
        double delta4 = delta * delta * delta * delta;
        var m = a.abs().add_(b.abs());
        m = torch.where(m.eq(Scalars.Zero), torch.ones_like(m), m); // a = b = 0: â = ŷ = 0, shares ½ each
        var yHat = y.div(m);
        var yHat2 = yHat.square();
        var ratio = g.div(yHat2.square().add_(Scalars.Of(delta4)));
        var yHat3 = yHat2.mul_(yHat);
        var half = Scalars.Of(delta4 / 2);
        var ga = a.div(m).mul_(yHat3).add_(half).mul_(ratio);
        var gb = b.div(m).mul_(yHat3).add_(half).mul_(ratio);
        return (ga, gb);
    }
}

internal sealed record SumNode(RuleScope Scope, string Name, ProportionalSplitRule Rule, Tensor A, Tensor B, Tensor Output);

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
            var (ga, gb) = ProportionalSplitBackward.Split(node.A, node.B, node.Output, g, node.Rule);
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
