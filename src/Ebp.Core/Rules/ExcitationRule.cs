using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Rules;

/// <summary>
/// The autograd side of <see cref="WPlusRule"/> for a layer that is linear with non-negative weights after clamping:
/// <c>G_in = x ⊙ layerᵀ(G ⊘ (layer(x; W⁺) + ε))</c>. Conv, Linear and (adaptive)
/// average pooling differ only in how <c>layer(x; W⁺)</c> is computed, which is the
/// <see cref="PositiveForward"/> delegate; <c>layerᵀ</c> is taken by autograd through that same delegate,
/// so strides, padding modes, groups and overlapping pooling windows need no code of their own.
/// W⁺ is materialised once per scope (see <see cref="BlockedLinearRule"/> for large linear layers in calls
/// with few backward passes, where it is not).
/// </summary>
internal sealed class ExcitationRule : IExcitationRule
{
    /// <param name="positive">x ↦ layer(x; max(W, 0)), with the bias as the rule's <see cref="BiasHandling"/> says.</param>
    /// <param name="negated">x ↦ layer(x; max(−W, 0)) likewise, for the contrastive pass; null if the layer has no weights.</param>
    /// <param name="epsilon">Added to Z (Z + ε, not max); the reference's by default.</param>
    public ExcitationRule(Func<Tensor, Tensor> positive, Func<Tensor, Tensor>? negated, double epsilon = WPlusRule.ReferenceEpsilon)
    {
        PositiveForward = positive;
        NegatedForward = negated;
        Epsilon = Scalars.Of(epsilon);
    }

    /// <summary>ε as a long-lived scalar.</summary>
    public Scalar Epsilon { get; }

    public Func<Tensor, Tensor> PositiveForward { get; }
    public Func<Tensor, Tensor>? NegatedForward { get; }

    /// <summary>Wraps the layer's output so that its backward pass follows the rule.</summary>
    public Tensor Attach(RuleScope scope, string name, Tensor input, Tensor output, bool isClassifier)
    {
        var node = new ExcitationNode(scope, name, this, input, isClassifier && NegatedForward is not null);
        node.Prepare(output);
        return ExcitationFunction.apply(input, node);
    }
}

/// <summary>State of one call of one layer: its input and the W⁺ forward graph used to form layerᵀ.</summary>
internal sealed class ExcitationNode : IExcitationNode
{
    private readonly RuleScope _scope;
    private readonly ExcitationRule _rule;
    private readonly bool _negatable;
    private Tensor _x = null!, _leaf = null!, _zEps = null!;
    private Tensor? _negLeaf, _negZEps;

    public ExcitationNode(RuleScope scope, string name, ExcitationRule rule, Tensor input, bool negatable)
    {
        _scope = scope;
        Name = name;
        _rule = rule;
        _negatable = negatable;
        _x = scope.Keep(input.detach());
    }

    public string Name { get; }
    public Tensor Input => _x;
    public Tensor Output { get; private set; } = null!;
    public RuleScope Scope => _scope;

    /// <summary>
    /// Computes Z = layer(x; W⁺) once in the forward pass, keeping its small graph so that every backward
    /// pass (the contrastive method runs two) reuses it instead of recomputing it.
    /// </summary>
    public void Prepare(Tensor output)
    {
        Output = _scope.Keep(output.detach());
        using var grad = torch.enable_grad();
        // Z + ε is kept rather than Z: the ε shifts nothing in layerᵀ and is then added once, not per backward pass.
        _leaf = _scope.Keep(_x.detach().requires_grad_(true));
        _zEps = _scope.Keep(_rule.PositiveForward(_leaf).add(_rule.Epsilon, Scalars.One));
        if (_negatable)
        {
            _negLeaf = _scope.Keep(_x.detach().requires_grad_(true));
            _negZEps = _scope.Keep(_rule.NegatedForward!(_negLeaf).add(_rule.Epsilon, Scalars.One));
        }
    }

    public Tensor Backward(Tensor g)
    {
        bool negate = _negatable && _scope.NegateClassifier;
        var leaf = negate ? _negLeaf! : _leaf;
        var zEps = negate ? _negZEps! : _zEps;
        using var scope = torch.NewDisposeScope();
        var s = g.div(zEps);
        var t = SafeAutograd.Gradient(zEps, s, leaf, retainGraph: true)
            ?? throw new InvalidOperationException("the rule's Z = layer(x; W⁺) does not depend on the layer input.");
        return t.mul_(_x).MoveToOuterDisposeScope(); // t is our own fresh gradient: scale it in place
    }
}

internal sealed class ExcitationFunction : torch.autograd.SingleTensorFunction<ExcitationFunction>
{
    public override string Name => "EbpExcitation";

    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var node = (IExcitationNode)vars[1];
        ctx.save_data("node", node);
        return node.Output.detach();
    }

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output)
    {
        var node = (IExcitationNode)ctx.get_data("node");
        return BackwardGuard.Run(node.Scope, node.Name,
            () => new List<Tensor> { node.Backward(grad_output), null! },
            () => new List<Tensor> { torch.zeros_like(node.Input), null! });
    }
}
