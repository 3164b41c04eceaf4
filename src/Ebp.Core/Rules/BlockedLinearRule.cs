using Ebp.Composites;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Rules;

/// <summary>
/// The Excitation Backprop rule for a <see cref="Linear"/> layer, evaluated block by block of output rows so
/// that W⁺ = max(W, 0) is never materialised as a whole.
/// </summary>
/// <remarks>
/// Why: a one-off call would otherwise clamp every weight into fresh memory. For VGG16's fc6 and fc7 (120 M
/// weights, 478 MB) that costs more than the layers' whole rule: the classifier head at batch 1 takes 208 ms
/// with W⁺ materialised per call, 96 ms blocked and 56 ms with W⁺ kept in a session (docs/BENCHMARKS.md,
/// "VGG16 classifier head"). Row i of Z = W⁺x depends only on row i of W⁺, and so does
/// S_i = G_i / (Z_i + ε); layerᵀ(S) = Σ_i S_i·W⁺_i is a sum over rows. One block of rows (a few MiB, in
/// cache) therefore serves Z, S and its share of layerᵀ before the next block is clamped: one pass over W per
/// backward pass, no large allocation. Where a layer sees more than <see cref="MaxStreamedPasses"/> backward
/// passes (sessions, many targets of one forward pass), for weights of at most <see cref="MinWeightBytes"/> and
/// on non-CPU devices (whose caching allocators make fresh memory cheap), <see cref="ExcitationRule"/> is used
/// instead; both give the same result up to float rounding of the row sums.
/// </remarks>
internal sealed class BlockedLinearRule : IExcitationRule
{
    /// <summary>Bytes of W⁺ clamped at a time: large enough for efficient matrix products, small enough for cache.</summary>
    public const long DefaultBlockBytes = 8L << 20;

    /// <summary>
    /// Weights up to this size are clamped whole, once per scope: their W⁺ is cheap to allocate and then serves
    /// every backward pass of the scope (K targets, both contrastive passes) without clamping again.
    /// </summary>
    public const long MinWeightBytes = 32L << 20;

    /// <summary>
    /// Up to this many backward passes through a layer, streaming W is cheaper than materialising W⁺ once: for
    /// VGG16's fc6 and fc7 at batch 1 a streamed pass costs ≈ 40 ms more than one with W⁺ kept, while
    /// materialising W⁺ costs ≈ 150 ms (docs/BENCHMARKS.md, "VGG16 classifier head").
    /// </summary>
    public const long MaxStreamedPasses = 3;

    /// <summary>Whether a scope with <paramref name="backwardPasses"/> passes through the layer should stream this weight.</summary>
    public static bool Pays(Tensor weight, long backwardPasses)
        => backwardPasses <= MaxStreamedPasses && weight.device_type == DeviceType.CPU
           && weight.NumberOfElements * weight.ElementSize > MinWeightBytes;

    private readonly Tensor _weight;
    private readonly Tensor? _bias;
    private readonly Scalar _epsilon;

    /// <param name="weight">The layer's live weight [out, in]; read under no_grad in the backward pass.</param>
    /// <param name="rowsPerBlock">Output rows per block (≥ 1).</param>
    /// <param name="bias">The layer's live bias [out] when the rule includes it (clamped per pass like W), else null.</param>
    /// <param name="epsilon">Added to Z.</param>
    public BlockedLinearRule(Tensor weight, long rowsPerBlock, Tensor? bias = null, double epsilon = WPlusRule.ReferenceEpsilon)
    {
        if (weight.dim() != 2) throw new ArgumentException($"A linear weight is [out, in]; got [{string.Join(", ", weight.shape)}].", nameof(weight));
        ArgumentOutOfRangeException.ThrowIfLessThan(rowsPerBlock, 1);
        _weight = weight;
        _bias = bias;
        _epsilon = Scalars.Of(epsilon);
        RowsPerBlock = rowsPerBlock;
    }

    public static BlockedLinearRule For(Linear linear, WPlusRule? rule = null, long blockBytes = DefaultBlockBytes)
    {
        rule ??= LayerRule.Excitation;
        var weight = linear.weight ?? throw new InvalidOperationException("The linear layer has no weight.");
        long rowBytes = weight.shape[1] * weight.ElementSize;
        return new BlockedLinearRule(weight, Math.Clamp(blockBytes / Math.Max(1, rowBytes), 1, Math.Max(1, weight.shape[0])),
            rule.Bias == BiasHandling.Include ? linear.bias : null, rule.Epsilon);
    }

    public long RowsPerBlock { get; }

    public Tensor Attach(RuleScope scope, string name, Tensor input, Tensor output, bool isClassifier)
    {
        var node = new BlockedLinearNode(scope, name, this, scope.Keep(input.detach()), scope.Keep(output.detach()), isClassifier);
        return ExcitationFunction.apply(input, node);
    }

    private static Tensor ClampedBias(Tensor bias, bool negate) => (negate ? bias.neg() : bias.clone()).clamp_min_(Scalars.Zero);

    /// <summary>x ⊙ W⁺ᵀ(G ⊘ (W⁺x [+ b⁺] + ε)), with W⁺ = max(−W, 0) (and b⁺ = max(−b, 0)) when <paramref name="negate"/> (contrastive pass).</summary>
    public Tensor Backward(Tensor x, Tensor g, bool negate)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        long outFeatures = _weight.shape[0], inFeatures = _weight.shape[1];
        var x2 = x.reshape(-1, inFeatures);
        var g2 = g.reshape(-1, outFeatures);
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
            using var biasBlock = _bias is null ? null : ClampedBias(_bias.narrow(0, r, n), negate);
            using var zEps = nn.functional.linear(x2, positive, biasBlock).add_(_epsilon);
            using var gBlock = g2.narrow(1, r, n);
            using var s = gBlock.div(zEps);
            t.addmm_(s, positive, 1f, 1f);
        }
        return t.reshape(x.shape).mul_(x).MoveToOuterDisposeScope();
    }
}

internal sealed record BlockedLinearNode(RuleScope Scope, string Name, BlockedLinearRule Rule, Tensor Input, Tensor Output, bool Negatable)
    : IExcitationNode
{
    public Tensor Backward(Tensor g) => Rule.Backward(Input, g, negate: Negatable && Scope.NegateClassifier);
}
