using Ebp.Rules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Composites;

/// <summary>
/// Which rule goes on which layer type under Excitation Backprop. Rules are created per module for the
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

    /// <summary>Creates the rule for an <see cref="LayerKind.Excitation"/> module. Weights tensors are owned by <paramref name="owned"/>.</summary>
    /// <param name="module">The module (a convolution, linear, pooling, BatchNorm or residual-sum layer).</param>
    /// <param name="owned">Receives the tensors the rule makes (e.g. the positive weights); the caller disposes them when the scope ends.</param>
    /// <param name="backwardPasses">How many backward passes the layer sees in this scope.</param>
    public static IExcitationRule CreateExcitationRule(nn.Module module, List<Tensor> owned, long backwardPasses)
    {
        switch (module)
        {
            case Linear linear when linear.weight is { } w && BlockedLinearRule.Pays(w, backwardPasses):
                return BlockedLinearRule.For(linear);
            case Linear linear:
            {
                var (pos, neg) = ClampedWeights(linear.weight, owned);
                return new ExcitationRule(x => nn.functional.linear(x, pos), x => nn.functional.linear(x, neg.Value));
            }
            case Convolution conv:
            {
                var (pos, neg) = ClampedWeights(conv.weight, owned);
                return new ExcitationRule(x => ConvForward(conv, x, pos), x => ConvForward(conv, x, neg.Value));
            }
            case nn.Module<Tensor, Tensor> pool:
                // Average pooling is already linear with non-negative weights: Z is the pooling itself.
                return new ExcitationRule(x => pool.forward(x), null);
            default:
                throw new InvalidOperationException($"No Excitation Backprop rule for {module.GetType().Name}.");
        }
    }

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

    /// <summary>The module's own convolution, with another weight and no bias.</summary>
    private static Tensor ConvForward(Convolution conv, Tensor x, Tensor weight)
    {
        var stride = conv.stride;
        var dilation = conv.dilation;
        var dims = conv.kernel_size.Length;
        if (conv.padding_mode != PaddingModes.Zeros)
        {
            var padding = conv.padding ?? throw new NotSupportedException(
                $"Conv with padding_mode {conv.padding_mode} and symbolic padding is not supported.");
            var pad = new long[2 * padding.Length];
            for (int i = 0; i < padding.Length; i++) pad[2 * i] = pad[2 * i + 1] = padding[padding.Length - 1 - i];
            using var padded = nn.functional.pad(x, pad, conv.padding_mode);
            return ConvCore(dims, padded, weight, stride, new long[dims], dilation, conv.groups);
        }
        if (conv.padding_type is { } type)
            return dims switch
            {
                1 => nn.functional.conv1d_padding(x, weight, null, stride[0], type, dilation[0], conv.groups),
                2 => nn.functional.conv2d_padding(x, weight, null, stride, type, dilation, conv.groups),
                _ => nn.functional.conv3d_padding(x, weight, null, stride, type, dilation, conv.groups),
            };
        return ConvCore(dims, x, weight, stride, conv.padding ?? new long[dims], dilation, conv.groups);
    }

    private static Tensor ConvCore(int dims, Tensor x, Tensor w, long[] stride, long[] padding, long[] dilation, long groups) => dims switch
    {
        1 => nn.functional.conv1d(x, w, null, stride[0], padding[0], dilation[0], groups),
        2 => nn.functional.conv2d(x, w, null, stride, padding, dilation, groups),
        3 => nn.functional.conv3d(x, w, null, stride, padding, dilation, groups),
        _ => throw new NotSupportedException($"Convolution with {dims} spatial dimensions."),
    };
}
