using TorchSharp;
using static TorchSharp.torch;

namespace Ebp;

/// <summary>Resizing and smoothing of saliency maps <c>[B, 1, ...]</c>.</summary>
public static class MapPostProcessing
{
    /// <summary>
    /// Resizes a map to <paramref name="size"/> (spatial dims, e.g. [H, W]). Bilinear uses half-pixel
    /// centres (linear/trilinear for 1-D/3-D maps); nearest takes source index floor(d·n/m).
    /// </summary>
    public static Tensor Resize(Tensor map, long[] size, ResizeMode mode)
    {
        int spatial = (int)map.dim() - 2;
        if (spatial < 1 || spatial > 3 || size.Length != spatial)
            throw new ArgumentException($"Cannot resize a map of shape [{string.Join(", ", map.shape)}] to [{string.Join(", ", size)}].");
        if (map.shape.Skip(2).SequenceEqual(size)) return map.alias();
        var interpolation = mode == ResizeMode.Nearest
            ? InterpolationMode.Nearest
            : spatial switch { 1 => InterpolationMode.Linear, 2 => InterpolationMode.Bilinear, _ => InterpolationMode.Trilinear };
        return nn.functional.interpolate(map, size, mode: interpolation,
            align_corners: mode == ResizeMode.Nearest ? null : false);
    }

    /// <summary>
    /// Gaussian smoothing of a 2-D map <c>[B, C, H, W]</c> exactly as TorchRay's <c>imsmooth</c> with replicate padding:
    /// sigma = <paramref name="sigmaFraction"/> × max(H, W), taps <c>exp(−(k / (√2·σ + ε))²)</c> for k = −w … w with
    /// w = ceil(4σ), normalised to sum 1, separable (along H, then W), borders replicated, so that a constant map
    /// stays constant. The output has the input's size.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative, NaN or infinite sigma, or one whose taps would not fit in memory.</exception>
    public static Tensor Smooth(Tensor map, double sigmaFraction)
    {
        if (!double.IsFinite(sigmaFraction) || sigmaFraction < 0)
            throw new ArgumentOutOfRangeException(nameof(sigmaFraction), sigmaFraction, "Smoothing sigma must be a finite, non-negative fraction of the map size.");
        if (sigmaFraction > MaxSigmaFraction)
            throw new ArgumentOutOfRangeException(nameof(sigmaFraction), sigmaFraction,
                $"Smoothing sigma must be at most {MaxSigmaFraction} (a multiple of the map size); beyond that the map is constant.");
        if (map.dim() != 4)
            throw new ArgumentException($"Smoothing needs a 2-D map [B, 1, H, W], got [{string.Join(", ", map.shape)}].");
        double sigma = sigmaFraction * Math.Max(map.shape[2], map.shape[3]);
        if (sigma <= 0) return map.alias();
        int radius = (int)Math.Ceiling(4 * sigma);
        // TorchRay's EPSILON_SINGLE: float32 machine epsilon, added to √2·σ (the taps are computed in float32 there).
        const double epsilon = 1.1920929e-07;
        double denominator = Math.Sqrt(2) * sigma + epsilon;
        var taps = new double[2 * radius + 1];
        double total = 0;
        for (int k = -radius; k <= radius; k++)
        {
            double r = k / denominator;
            total += taps[k + radius] = Math.Exp(-r * r);
        }
        var weights = taps.Select(t => (float)(t / total)).ToArray();

        using var scope = torch.NewDisposeScope();
        var kernel = torch.tensor(weights, dtype: map.dtype, device: map.device);
        var channels = map.shape[1];
        var ky = kernel.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1).contiguous();
        var kx = kernel.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1).contiguous();
        // Replicate padding by more than the map's size is not offered by pad(); clamping the source index is the
        // same thing for any width.
        var y = nn.functional.conv2d(ReplicatePad(map, 2, radius), ky, groups: channels);
        var x = nn.functional.conv2d(ReplicatePad(y, 3, radius), kx, groups: channels);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>The largest accepted smoothing sigma, as a fraction of the map's larger side.</summary>
    public const double MaxSigmaFraction = 16;

    private static Tensor ReplicatePad(Tensor t, int dim, int width)
    {
        long n = t.shape[dim];
        var index = torch.arange(-width, n + width, dtype: ScalarType.Int64, device: t.device).clamp_(0, n - 1);
        return t.index_select(dim, index);
    }
}
