using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Modules;

/// <summary>
/// A residual sum <c>y = branch + shortcut</c> as an explicit module, so that a saliency rule can be
/// attached to it. Use it in place of <c>a + b</c> in your own residual models; it has no parameters,
/// so a model's <c>state_dict</c> is unchanged.
/// </summary>
public sealed class ResidualSum : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>A residual sum; <paramref name="name"/> is the TorchSharp module name (not its state_dict key, which its parent gives).</summary>
    /// <param name="name">The module's own name.</param>
    public ResidualSum(string name = "ResidualSum") : base(name) { }

    /// <summary>Returns <paramref name="branch"/> + <paramref name="shortcut"/> (a new tensor).</summary>
    public override Tensor forward(Tensor branch, Tensor shortcut) => branch.add(shortcut, Rules.Scalars.One);
}
