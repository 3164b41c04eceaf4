namespace Ebp;

/// <summary>The saliency methods Ebp computes, named as TorchRay names them.</summary>
public enum SaliencyMethod
{
    /// <summary>Excitation Backprop: winning probabilities, the channel sum of the signal at the saliency layer.</summary>
    ExcitationBackprop,
    /// <summary>Contrastive EBP: the EBP signal minus the signal of the classifier with negated weights, clamped at 0.</summary>
    ContrastiveExcitationBackprop,
    /// <summary>
    /// Rules off: the ordinary gradient reduced as <c>max_c |G|</c>, TorchRay's <c>gradient</c> (Simonyan et al.), the
    /// baseline of the pointing game. Earlier versions of Ebp gave the signed channel sum here, which is now <see cref="GradientSum"/>.
    /// </summary>
    Gradient,
    /// <summary>Rules off: the ordinary gradient reduced by the signed channel sum (TorchRay's <c>gradient_sum</c>).</summary>
    GradientSum,
}

/// <summary>How a map is resized to the requested size.</summary>
public enum ResizeMode
{
    /// <summary>Bilinear, half-pixel centres, not corner-aligned (PyTorch's <c>align_corners=False</c>).</summary>
    Bilinear,
    /// <summary>Nearest neighbour: source index <c>floor(d·n/m)</c> (PyTorch's <c>nearest</c>).</summary>
    Nearest,
}
