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
    /// Gaussian smoothing of a 2-D map <c>[B, 1, H, W]</c>, separable, with sigma = <paramref name="sigmaFraction"/>
    /// × max(H, W) and replicated borders, so that a constant map stays constant.
    /// </summary>
    public static Tensor Smooth(Tensor map, double sigmaFraction)
    {
        if (double.IsNaN(sigmaFraction) || sigmaFraction < 0)
            throw new ArgumentOutOfRangeException(nameof(sigmaFraction), sigmaFraction, "Smoothing sigma must be a non-negative fraction of the map size.");
        if (map.dim() != 4)
            throw new ArgumentException($"Smoothing needs a 2-D map [B, 1, H, W], got [{string.Join(", ", map.shape)}].");
        double sigma = sigmaFraction * Math.Max(map.shape[2], map.shape[3]);
        if (sigma <= 0) return map.alias();
        int radius = Math.Max(1, (int)Math.Ceiling(3 * sigma));
        var weights = new float[2 * radius + 1];
        double total = 0;
        for (int i = -radius; i <= radius; i++) total += weights[i + radius] = (float)Math.Exp(-0.5 * i * i / (sigma * sigma));
        for (int i = 0; i < weights.Length; i++) weights[i] = (float)(weights[i] / total);

        using var scope = torch.NewDisposeScope();
        var kernel = torch.tensor(weights, dtype: map.dtype, device: map.device);
        var channels = map.shape[1];
        var kx = kernel.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1).contiguous();
        var ky = kernel.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1).contiguous();
        var padded = nn.functional.pad(map, new long[] { radius, radius, 0, 0 }, PaddingModes.Replicate);
        var x = nn.functional.conv2d(padded, kx, groups: channels);
        padded = nn.functional.pad(x, new long[] { 0, 0, radius, radius }, PaddingModes.Replicate);
        var y = nn.functional.conv2d(padded, ky, groups: channels);
        return y.MoveToOuterDisposeScope();
    }
}
