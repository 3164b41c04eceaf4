using TorchSharp;
using static TorchSharp.torch;

namespace Ebp;

/// <summary>
/// The one ranking of scores used everywhere a "top-k" is taken (<see cref="SaliencyTarget.Ranked"/>, the ML.NET
/// stage's top-k column, the audit tool, precision measures): highest score first, ties to the lower index (as argmax).
/// </summary>
public static class Ranking
{
    /// <summary>The indices of <paramref name="scores"/>, highest score first; ties keep index order; NaN ranks last.</summary>
    public static int[] Descending(ReadOnlySpan<float> scores)
    {
        var keys = scores.ToArray();
        var order = Enumerable.Range(0, keys.Length).ToArray();
        Array.Sort(order, (a, b) => keys[a] != keys[b] && !(float.IsNaN(keys[a]) && float.IsNaN(keys[b]))
            ? keys[b].CompareTo(keys[a]) : a.CompareTo(b));
        return order;
    }

    /// <summary>
    /// The class indices of each row of <c>[B, classes]</c> <paramref name="scores"/>, highest first, ties to the lower
    /// index (a stable descending sort): an Int64 tensor of the same shape.
    /// </summary>
    public static Tensor Descending(Tensor scores)
    {
        ArgumentNullException.ThrowIfNull(scores);
        if (scores.dim() != 2)
            throw new ArgumentException($"Scores have shape [{string.Join(", ", scores.shape)}]; a ranking takes [batch, classes].", nameof(scores));
        using var scope = torch.NewDisposeScope();
        var (_, order) = scores.detach().sort(1, descending: true, stable: true);
        return order.MoveToOuterDisposeScope();
    }
}
