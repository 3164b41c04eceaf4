using static TorchSharp.torch;

namespace Ebp.Rules;

/// <summary>
/// A backward rule for a layer that Excitation Backprop treats as linear with non-negative weights
/// (conv, linear, average pooling): <c>G_in = x ⊙ layerᵀ(G ⊘ (layer(x; W⁺) + 1e-20))</c>. The two
/// implementations differ only in how they evaluate it, not in the result.
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
