using static TorchSharp.torch;

namespace Ebp.Weights;

/// <summary>
/// A name → tensor dictionary that owns its tensors: <see cref="Dispose"/> disposes every value.
/// Returned by the readers of <see cref="WeightLoader"/>.
/// </summary>
public sealed class TensorDictionary : Dictionary<string, Tensor>, IDisposable
{
    /// <summary>Creates an empty dictionary (ordinal key comparison).</summary>
    public TensorDictionary() : base(StringComparer.Ordinal) { }

    /// <summary>Disposes every tensor and clears the dictionary.</summary>
    public void Dispose()
    {
        foreach (var t in Values)
            t?.Dispose();
        Clear();
    }
}
