using Ebp.Rules;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp;

/// <summary>
/// How the signal at the saliency layer, <c>G [B, C, ...]</c>, becomes a map <c>[B, 1, ...]</c>: TorchRay's
/// <c>gradient_to_saliency</c>. Every method has a default (<see cref="SaliencyMethod"/>); set
/// <see cref="SaliencyOptions.Reduction"/> to replace it.
/// </summary>
public sealed class MapReduction
{
    private readonly Func<Tensor, Tensor> _reduce;

    private MapReduction(string name, Func<Tensor, Tensor> reduce)
    {
        Name = name;
        _reduce = reduce;
    }

    /// <summary>Signed sum over channels, <c>Σ_c G</c>: EBP and TorchRay's <c>gradient_sum</c>.</summary>
    public static MapReduction ChannelSum { get; } = new("channel sum", g => g.sum(1, keepdim: true));

    /// <summary><c>max(Σ_c G, 0)</c>: contrastive EBP.</summary>
    public static MapReduction ClampedChannelSum { get; } = new("clamped channel sum", g => g.sum(1, keepdim: true).clamp_min_(Scalars.Zero));

    /// <summary><c>max_c |G|</c>: TorchRay's <c>gradient</c> (Simonyan et al.).</summary>
    public static MapReduction MaxAbs { get; } = new("max over channels of |G|", g => g.abs().amax(new long[] { 1 }, keepdim: true));

    /// <summary>
    /// A reduction of your own. <paramref name="reduce"/> receives <c>G [B, C, ...]</c> (do not modify it) and returns
    /// a new tensor <c>[B, 1, ...]</c> of the same rank, normally of the same spatial shape; for a channels-last signal
    /// (the input of an NHWC model) it may reduce the last axis instead, <c>[B, H, W, C] → [B, 1, H, W]</c>. It runs
    /// inside a dispose scope that keeps only its result.
    /// </summary>
    public static MapReduction Custom(string name, Func<Tensor, Tensor> reduce)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(reduce);
        return new MapReduction(name, reduce) { _mayReduceLastAxis = true };
    }

    private bool _mayReduceLastAxis;

    /// <summary>A short description, used in error messages.</summary>
    public string Name { get; }

    /// <summary>Reduces <paramref name="signal"/> <c>[B, C, ...]</c> to <c>[B, 1, ...]</c>; checks the result's shape.</summary>
    public Tensor Reduce(Tensor signal)
    {
        ArgumentNullException.ThrowIfNull(signal);
        using var scope = torch.NewDisposeScope();
        var map = _reduce(signal) ?? throw new InvalidOperationException($"The map reduction '{Name}' returned null.");
        // The map keeps the signal's rank with one channel. Its spatial size is the signal's, except that a custom
        // reduction may reduce another axis than 1 (a channels-last signal, [B, H, W, C] → [B, 1, H, W]).
        bool fits = !map.IsInvalid && map.dim() == signal.dim() && map.shape[0] == signal.shape[0] && map.shape[1] == 1
                    && (map.shape.Skip(2).SequenceEqual(signal.shape.Skip(2))
                        || (_mayReduceLastAxis && map.shape.Skip(2).SequenceEqual(signal.shape.Skip(1).SkipLast(1))));
        if (!fits)
            throw new InvalidOperationException(
                $"The map reduction '{Name}' must turn a signal of shape [{string.Join(", ", signal.shape)}] into " +
                $"[{signal.shape[0]}, 1, {string.Join(", ", signal.shape.Skip(2))}]; it returned " +
                (map.IsInvalid ? "a disposed tensor." : $"[{string.Join(", ", map.shape)}]."));
        if (ReferenceEquals(map, signal)) map = map.alias();
        return map.MoveToOuterDisposeScope();
    }

    /// <summary>The reduction <paramref name="method"/> uses unless the options name another.</summary>
    public static MapReduction DefaultFor(SaliencyMethod method) => method switch
    {
        SaliencyMethod.ExcitationBackprop or SaliencyMethod.GradientSum => ChannelSum,
        SaliencyMethod.ContrastiveExcitationBackprop => ClampedChannelSum,
        SaliencyMethod.Gradient => MaxAbs,
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, $"Unknown saliency method {(int)method}; use one of {string.Join(", ", Enum.GetNames<SaliencyMethod>())}."),
    };

    /// <inheritdoc/>
    public override string ToString() => Name;
}
