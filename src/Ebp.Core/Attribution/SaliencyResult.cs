using static TorchSharp.torch;

namespace Ebp;

/// <summary>
/// The result of a saliency call. Owns its tensors: dispose it (or let an enclosing
/// <c>torch.NewDisposeScope()</c> take them) when done.
/// </summary>
public sealed class SaliencyResult : IDisposable
{
    internal SaliencyResult(Tensor map, Tensor scores, IReadOnlyDictionary<string, Tensor>? signals,
                            IReadOnlyDictionary<string, Tensor>? contrastSignals)
    {
        Map = map;
        Scores = scores;
        Signals = signals;
        ContrastSignals = contrastSignals;
    }

    /// <summary>The saliency map <c>[B, 1, ...]</c> (channel sum of the signal; clamped at 0 for contrastive EBP).</summary>
    public Tensor Map { get; }

    /// <summary>The model's output for the input <c>[B, classes]</c>, from the same forward pass.</summary>
    public Tensor Scores { get; }

    /// <summary>With <see cref="SaliencyOptions.Probe"/> or <see cref="SaliencyOptions.CollectSignals"/>: the signal at each probed module's output (final pass).</summary>
    public IReadOnlyDictionary<string, Tensor>? Signals { get; }

    /// <summary>With a probe and contrastive EBP: the signals of the contrast pass (probed modules above the contrast layer).</summary>
    public IReadOnlyDictionary<string, Tensor>? ContrastSignals { get; }

    /// <summary>The map as a float array with its shape, for callers outside TorchSharp.</summary>
    public float[] MapToArray() => Map.cpu().data<float>().ToArray();

    /// <summary>Disposes the map, the scores and the signals this result holds.</summary>
    public void Dispose()
    {
        Map.Dispose();
        Scores.Dispose();
        if (Signals is not null) foreach (var t in Signals.Values) t.Dispose();
        if (ContrastSignals is not null) foreach (var t in ContrastSignals.Values) t.Dispose();
    }
}
