using static TorchSharp.torch;

namespace Ebp.Rules;

/// <summary>
/// The autograd side of <see cref="WPlusRule"/> for one module (conv, linear, average pooling):
/// <c>G_in = x ⊙ layerᵀ(G ⊘ (layer(x; W⁺) + ε))</c>. The two implementations differ only in how they evaluate
/// it, not in the result.
/// </summary>
internal interface IExcitationRule
{
    /// <summary>Wraps the layer's output so that its backward pass follows the rule.</summary>
    Tensor Attach(RuleScope scope, string name, Tensor input, Tensor output, bool isClassifier);
}

/// <summary>What <see cref="ExcitationFunction"/> needs from one call of one layer.</summary>
internal interface IExcitationNode
{
    string Name { get; }
    RuleScope Scope { get; }
    Tensor Input { get; }
    Tensor Output { get; }
    Tensor Backward(Tensor g);
}
