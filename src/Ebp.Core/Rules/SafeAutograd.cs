using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Rules;

/// <summary>
/// Gradients through <c>torch.autograd.backward(…, inputs)</c> rather than <c>torch.autograd.grad</c>:
/// TorchSharp 0.107's native <c>grad</c> does not catch libtorch errors, so any error there terminates the
/// process, while <c>backward</c> turns them into a managed exception.
/// </summary>
internal static class SafeAutograd
{
    /// <summary>∂⟨output, seed⟩/∂input, or null when output does not depend on input.</summary>
    public static Tensor? Gradient(Tensor output, Tensor seed, Tensor input, bool retainGraph)
    {
        if (!output.requires_grad) return null;
        input.grad = null;
        torch.autograd.backward(new[] { output }, new[] { seed }, retain_graph: retainGraph, inputs: new[] { input });
        var g = input.grad;
        input.grad = null;
        return g is null || g.IsInvalid ? null : g;
    }
}
