using Ebp.Rules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Composites;

/// <summary>
/// Which rule goes on which layer type under Excitation Backprop, and the autograd side of <see cref="WPlusRule"/>
/// for a module. Rules are created per module for the
/// lifetime of one scope. Convolutions cache W⁺ = max(W, 0) (and max(−W, 0) for the contrastive
/// classifier) for that scope. Large linear layers on the CPU in a call with few backward passes use
/// <see cref="BlockedLinearRule"/>, which never materialises W⁺ (the large fully connected layers of VGG-style
/// models would otherwise spend more on fresh memory for W⁺ than on the rule itself). Where the scope runs
/// more passes (a session, many targets) W⁺ is materialised once.
/// </summary>
internal static class ExcitationComposite
{
    public static LayerKind Classify(nn.Module module) => module switch
    {
        ConvolutionTranspose => LayerKind.Unsupported,
        Conv1d or Conv2d or Conv3d or Linear => LayerKind.Excitation,
        AvgPool1d or AvgPool2d or AvgPool3d or AdaptiveAvgPool1d or AdaptiveAvgPool2d or AdaptiveAvgPool3d => LayerKind.Excitation,
        BatchNorm1d or BatchNorm2d or BatchNorm3d => LayerKind.PassThrough,
        Modules.ResidualSum => LayerKind.ProportionalSum,
        // Normalisations that mix a sample's units by data-dependent statistics have no EBP rule.
        LayerNorm or GroupNorm or InstanceNorm1d or InstanceNorm2d or InstanceNorm3d or LocalResponseNorm => LayerKind.Unsupported,
        _ => HasOwnParameters(module) ? LayerKind.Unsupported : LayerKind.Gradient,
    };

    public static bool HasOwnParameters(nn.Module module) => module.named_parameters(recurse: false).Any();

    /// <summary>Creates the autograd side of <paramref name="rule"/> for a module.</summary>
    /// <param name="module">A convolution, linear or average pooling layer (or a module the composite gave the W⁺ rule).</param>
    /// <param name="owned">Receives the clamped weight tensors, which the scope disposes.</param>
    /// <param name="backwardPasses">How many backward passes the layer sees in this scope.</param>
    /// <param name="rule">ε and bias handling; null is the reference's <see cref="LayerRule.Excitation"/>.</param>
    public static IExcitationRule CreateExcitationRule(nn.Module module, List<Tensor> owned, long backwardPasses, WPlusRule? rule = null)
    {
        rule ??= LayerRule.Excitation;
        bool withBias = rule.Bias == BiasHandling.Include;
        switch (module)
        {
            case Linear linear when linear.weight is { } w && BlockedLinearRule.Pays(w, backwardPasses):
                return BlockedLinearRule.For(linear, rule);
            case Linear linear:
            {
                var (pos, neg) = ClampedWeights(linear.weight, owned);
                var (posBias, negBias) = ClampedBias(withBias, linear.bias, owned);
                return new ExcitationRule(x => nn.functional.linear(x, pos, posBias), x => nn.functional.linear(x, neg.Value, negBias?.Value), rule.Epsilon);
            }
            case Convolution conv:
            {
                var (pos, neg) = ClampedWeights(conv.weight, owned);
                var (posBias, negBias) = ClampedBias(withBias, conv.bias, owned);
                return new ExcitationRule(x => ConvForward(conv, x, pos, posBias), x => ConvForward(conv, x, neg.Value, negBias?.Value), rule.Epsilon);
            }
            case nn.Module<Tensor, Tensor> pool:
                // Average pooling is already linear with non-negative weights: Z is the pooling itself.
                return new ExcitationRule(x => pool.forward(x), null, rule.Epsilon);
            default:
                throw new InvalidOperationException($"No Excitation Backprop rule for {module.GetType().Name}.");
        }
    }

    /// <summary>b⁺ and max(−b, 0) when the rule includes the bias and the layer has one, else nulls.</summary>
    private static (Tensor? Positive, Lazy<Tensor>? Negated) ClampedBias(bool include, Tensor? bias, List<Tensor> owned)
        => include && bias is not null ? ClampedWeights(bias, owned) : (null, null);

    /// <summary>max(W, 0) now and max(−W, 0) on first use.</summary>
    private static (Tensor Positive, Lazy<Tensor> Negated) ClampedWeights(Tensor weight, List<Tensor> owned)
    {
        Tensor pos;
        using (torch.no_grad()) pos = weight.detach().clamp_min(Scalars.Zero).DetachFromDisposeScope();
        owned.Add(pos);
        // Only the contrastive classifier ever needs max(−W, 0); build it on first use.
        var neg = new Lazy<Tensor>(() =>
        {
            Tensor n;
            using (torch.no_grad()) n = weight.detach().neg().clamp_min(Scalars.Zero).DetachFromDisposeScope();
            lock (owned) owned.Add(n);
            return n;
        });
        return (pos, neg);
    }

    /// <summary>The module's own convolution, with another weight and bias.</summary>
    private static Tensor ConvForward(Convolution conv, Tensor x, Tensor weight, Tensor? bias)
    {
        var stride = conv.stride;
        var dilation = conv.dilation;
        var dims = conv.kernel_size.Length;
        if (conv.padding_mode != PaddingModes.Zeros)
        {
            using var padded = nn.functional.pad(x, SidePadding(conv), conv.padding_mode);
            return ConvCore(dims, padded, weight, bias, stride, new long[dims], dilation, conv.groups);
        }
        if (conv.padding_type is { } type)
            return dims switch
            {
                1 => nn.functional.conv1d_padding(x, weight, bias, stride[0], type, dilation[0], conv.groups),
                2 => nn.functional.conv2d_padding(x, weight, bias, stride, type, dilation, conv.groups),
                _ => nn.functional.conv3d_padding(x, weight, bias, stride, type, dilation, conv.groups),
            };
        return ConvCore(dims, x, weight, bias, stride, conv.padding ?? new long[dims], dilation, conv.groups);
    }

    /// <summary>
    /// The conv's padding per side, last dimension first (as <c>pad</c> takes it). Padding.Same pads d·(k − 1) in all,
    /// the smaller half before, as PyTorch does; Valid pads nothing.
    /// </summary>
    private static long[] SidePadding(Convolution conv)
    {
        var kernel = conv.kernel_size;
        var pad = new long[2 * kernel.Length];
        for (int i = 0; i < kernel.Length; i++)
        {
            long before, after;
            if (conv.padding is { } p) before = after = p[p.Length == 1 ? 0 : i];
            else if (conv.padding_type == Padding.Valid) before = after = 0;
            else
            {
                long total = conv.dilation[i] * (kernel[i] - 1);
                before = total / 2;
                after = total - before;
            }
            int j = kernel.Length - 1 - i;
            pad[2 * j] = before;
            pad[2 * j + 1] = after;
        }
        return pad;
    }

    private static Tensor ConvCore(int dims, Tensor x, Tensor w, Tensor? b, long[] stride, long[] padding, long[] dilation, long groups) => dims switch
    {
        1 => nn.functional.conv1d(x, w, b, stride[0], padding[0], dilation[0], groups),
        2 => nn.functional.conv2d(x, w, b, stride, padding, dilation, groups),
        3 => nn.functional.conv3d(x, w, b, stride, padding, dilation, groups),
        _ => throw new NotSupportedException($"Convolution with {dims} spatial dimensions."),
    };
}
