namespace Ebp.Models;

/// <summary>
/// A model that states the shape of one input sample (without the batch dimension), as an imported file does.
/// <see cref="SaliencyExplainer"/> checks inputs against it instead of inferring <c>[C, ...]</c> from the first
/// weighted layer, which would be wrong for a model that permutes its input first (an NHWC export that starts
/// with a Transpose).
/// </summary>
public interface IDeclaresInputShape
{
    /// <summary>The shape of one sample, e.g. <c>[3, 224, 224]</c> or, for an NHWC model, <c>[224, 224, 3]</c>.</summary>
    IReadOnlyList<long> SampleShape { get; }
}
