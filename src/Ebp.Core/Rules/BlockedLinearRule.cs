using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Rules;

/// <summary>
/// The Excitation Backprop rule for a <see cref="Linear"/> layer, evaluated block by block of output rows so
/// that W⁺ = max(W, 0) is never materialised as a whole.
/// </summary>
/// <remarks>
/// Why: a one-off call would otherwise clamp every weight into fresh memory. For VGG16's fc6 (103 M weights,
/// 411 MB) the page faults of that fresh memory alone cost ≈ 140 ms at batch 1 on a 2-core machine, more than
/// the whole Z and layerᵀ of the layer (≈ 30 ms). Row i of Z = W⁺x depends only on row i of W⁺, and so does
/// S_i = G_i / (Z_i + ε); layerᵀ(S) = Σ_i S_i·W⁺_i is a sum over rows. One block of rows (a few MiB, in
/// cache) therefore serves Z, S and its share of layerᵀ before the next block is clamped: one pass over W per
/// backward, no large allocation. Sessions (which keep W⁺ across calls), weights of at most
/// <see cref="MinWeightBytes"/> and non-CPU devices (whose caching allocators make fresh memory cheap) use
/// <see cref="ExcitationRule"/> instead; both give the same result up to float rounding of the row sums.
/// </remarks>
internal sealed class BlockedLinearRule : IExcitationRule
{
    /// <summary>Bytes of W⁺ clamped at a time: large enough for efficient matrix products, small enough for cache.</summary>
    public const long DefaultBlockBytes = 8L << 20;

    /// <summary>
    /// Weights up to this size are clamped whole, once per call: their W⁺ is cheap to allocate and then serves
    /// every backward pass of the call (K targets, both contrastive passes) without clamping again.
    /// </summary>
    public const long MinWeightBytes = 32L << 20;

    /// <summary>Whether a one-off call should evaluate this weight block by block.</summary>
    public static bool Pays(Tensor weight) => weight.device_type == DeviceType.CPU && weight.NumberOfElements * weight.ElementSize > MinWeightBytes;

    private readonly Tensor _weight;

    /// <param name="weight">The layer's live weight [out, in]; read under no_grad in the backward pass.</param>
    /// <param name="rowsPerBlock">Output rows per block (≥ 1).</param>
    public BlockedLinearRule(Tensor weight, long rowsPerBlock)
    {
        if (weight.dim() != 2) throw new ArgumentException($"A linear weight is [out, in]; got [{string.Join(", ", weight.shape)}].", nameof(weight));
        ArgumentOutOfRangeException.ThrowIfLessThan(rowsPerBlock, 1);
        _weight = weight;
        RowsPerBlock = rowsPerBlock;
    }

    public static BlockedLinearRule For(Linear linear, long blockBytes = DefaultBlockBytes)
    {
        var weight = linear.weight ?? throw new InvalidOperationException("The linear layer has no weight.");
        long rowBytes = weight.shape[1] * weight.ElementSize;
        return new BlockedLinearRule(weight, Math.Clamp(blockBytes / Math.Max(1, rowBytes), 1, Math.Max(1, weight.shape[0])));
    }

    public long RowsPerBlock { get; }

    public Tensor Attach(RuleScope scope, string name, Tensor input, Tensor output, bool isClassifier)
    {
        var node = new BlockedLinearNode(scope, name, this, scope.Keep(input.detach()), scope.Keep(output.detach()), isClassifier);
        return ExcitationFunction.apply(input, node);
    }

    /// <summary>
    /// x ⊙ W⁺ᵀ(G ⊘ (W⁺x + ε)), with W⁺ = max(−W, 0) when <paramref name="negate"/> (contrastive pass).
    /// <paramref name="zEps"/> is W⁺x + ε ([N, out], N = all leading dimensions): pass null on the first
    /// backward pass and it is computed block by block; later passes over the same input (more targets)
    /// reuse it and only clamp the blocks again for layerᵀ.
    /// </summary>
    public Tensor Backward(Tensor x, Tensor g, bool negate, ref Tensor? zEps)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        long outFeatures = _weight.shape[0], inFeatures = _weight.shape[1];
        var x2 = x.reshape(-1, inFeatures);
        var g2 = g.reshape(-1, outFeatures);
        bool fresh = zEps is null;
        var z = zEps ?? torch.empty(x2.shape[0], outFeatures, x2.dtype, x2.device);
        var t = torch.zeros_like(x2);
        // One buffer for every block: a fresh 8 MiB tensor per block would be served from fresh pages each
        // time (glibc returns freed blocks of that size to the system), and the page faults cost more than
        // the rule itself.
        var buffer = torch.empty(Math.Min(RowsPerBlock, outFeatures), inFeatures, _weight.dtype, _weight.device);
        for (long r = 0; r < outFeatures; r += RowsPerBlock)
        {
            long n = Math.Min(RowsPerBlock, outFeatures - r);
            using var block = _weight.narrow(0, r, n);
            using var positive = n == buffer.shape[0] ? buffer.alias() : buffer.narrow(0, 0, n);
            positive.copy_(block);
            if (negate) positive.neg_();
            positive.clamp_min_(Scalars.Zero);
            using var zBlock = z.narrow(1, r, n);
            if (fresh) zBlock.copy_(nn.functional.linear(x2, positive).add_(Scalars.Epsilon));
            using var gBlock = g2.narrow(1, r, n);
            using var s = gBlock.div(zBlock);
            t.addmm_(s, positive, 1f, 1f);
        }
        if (fresh) zEps = z.MoveToOuterDisposeScope();
        return t.reshape(x.shape).mul_(x).MoveToOuterDisposeScope();
    }
}

internal sealed class BlockedLinearNode : IExcitationNode
{
    private readonly BlockedLinearRule _rule;
    private readonly bool _negatable;
    private Tensor? _zEps, _negZEps;

    public BlockedLinearNode(RuleScope scope, string name, BlockedLinearRule rule, Tensor input, Tensor output, bool negatable)
    {
        Scope = scope;
        Name = name;
        _rule = rule;
        Input = input;
        Output = output;
        _negatable = negatable;
    }

    public string Name { get; }
    public RuleScope Scope { get; }
    public Tensor Input { get; }
    public Tensor Output { get; }

    public Tensor Backward(Tensor g)
    {
        bool negate = _negatable && Scope.NegateClassifier;
        ref var cache = ref negate ? ref _negZEps : ref _zEps;
        bool fresh = cache is null;
        var result = _rule.Backward(Input, g, negate, ref cache);
        if (fresh && cache is not null) Scope.Keep(cache); // freed with the call's other tensors
        return result;
    }
}
