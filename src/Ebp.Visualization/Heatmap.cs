using SkiaSharp;

namespace Ebp.Visualization;

/// <summary>Turns saliency maps (row-major float arrays) into colour images.</summary>
public static class Heatmap
{
    /// <summary>Colour of a value in [0, 1] on the "jet" scale (dark blue → blue → cyan → yellow → red → dark red).</summary>
    public static SKColor Color(float t)
    {
        var (r, g, b) = Jet(t);
        return new SKColor(r, g, b);
    }

    /// <summary>The "jet" colour of a value in [0, 1] as bytes; NaN and values outside [0, 1] are clamped.</summary>
    public static (byte R, byte G, byte B) Jet(float t)
    {
        t = float.IsFinite(t) ? Math.Clamp(t, 0f, 1f) : 0f;
        static byte C(float v) => (byte)MathF.Round(255f * Math.Clamp(v, 0f, 1f));
        return (C(1.5f - MathF.Abs(4f * t - 3f)), C(1.5f - MathF.Abs(4f * t - 2f)), C(1.5f - MathF.Abs(4f * t - 1f)));
    }

    /// <summary>Bilinear resize of a row-major map, half-pixel centres (PyTorch's <c>align_corners=False</c>).</summary>
    public static float[] ResizeBilinear(ReadOnlySpan<float> src, int sw, int sh, int dw, int dh)
    {
        var dst = new float[dw * dh];
        for (int y = 0; y < dh; y++)
        {
            float fy = Math.Max(0f, (y + 0.5f) * sh / dh - 0.5f);
            int y0 = Math.Min((int)fy, sh - 1), y1 = Math.Min(y0 + 1, sh - 1);
            float wy = fy - y0;
            for (int x = 0; x < dw; x++)
            {
                float fx = Math.Max(0f, (x + 0.5f) * sw / dw - 0.5f);
                int x0 = Math.Min((int)fx, sw - 1), x1 = Math.Min(x0 + 1, sw - 1);
                float wx = fx - x0;
                float top = src[y0 * sw + x0] * (1 - wx) + src[y0 * sw + x1] * wx;
                float bottom = src[y1 * sw + x0] * (1 - wx) + src[y1 * sw + x1] * wx;
                dst[y * dw + x] = top * (1 - wy) + bottom * wy;
            }
        }
        return dst;
    }

    /// <summary>
    /// Scales a map to [0, 1] by its maximum (negative values, present in plain-EBP ResNet maps and in
    /// gradients, show as 0). An all-zero map stays all zero.
    /// </summary>
    public static float[] Normalise(ReadOnlySpan<float> map)
    {
        float max = 0;
        foreach (var v in map) if (float.IsFinite(v) && v > max) max = v;
        var result = new float[map.Length];
        if (max <= 0) return result;
        for (int i = 0; i < map.Length; i++) result[i] = float.IsFinite(map[i]) ? Math.Max(0, map[i] / max) : 0;
        return result;
    }

    /// <summary>A colour image of a map of <paramref name="width"/>×<paramref name="height"/>, normalised by its maximum.</summary>
    public static SKBitmap Render(ReadOnlySpan<float> map, int width, int height)
    {
        if (map.Length != width * height)
            throw new ArgumentException($"A map of {map.Length} values cannot be {width}×{height}.", nameof(map));
        var n = Normalise(map);
        var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                bitmap.SetPixel(x, y, Color(n[y * width + x]));
        return bitmap;
    }

    /// <summary>
    /// The heatmap blended over an image: <c>alpha·heat + (1 − alpha)·image</c>, with the heat's weight also scaled by
    /// the normalised saliency so that cold regions keep the image visible. The map is scaled to the image by nearest
    /// neighbour (the figures show the map's own cells).
    /// </summary>
    public static SKBitmap Overlay(SKBitmap image, ReadOnlySpan<float> map, int mapWidth, int mapHeight, float alpha = 0.6f)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (map.Length != mapWidth * mapHeight)
            throw new ArgumentException($"A map of {map.Length} values cannot be {mapWidth}×{mapHeight}.", nameof(map));
        int w = image.Width, h = image.Height;
        var n = Normalise(map);
        var scaled = new float[w * h];
        var rgba = new byte[w * h * 4];
        for (int y = 0; y < h; y++)
        {
            int my = Math.Min(mapHeight - 1, y * mapHeight / h);
            for (int x = 0; x < w; x++)
            {
                scaled[y * w + x] = n[my * mapWidth + Math.Min(mapWidth - 1, x * mapWidth / w)];
                var pixel = image.GetPixel(x, y);
                int i = (y * w + x) * 4;
                (rgba[i], rgba[i + 1], rgba[i + 2], rgba[i + 3]) = (pixel.Red, pixel.Green, pixel.Blue, pixel.Alpha);
            }
        }
        return ToBitmap(Blend(rgba, 4, scaled, alpha, weightBySaliency: true), w, h);
    }

    /// <summary>
    /// The one blend of a heat map over an image (the overlays of the figures, the ML.NET stage and the audit tool):
    /// each pixel becomes <c>(1 − a)·pixel + a·jet(s)</c>, rounded, with <c>s</c> the map normalised by its maximum
    /// (<see cref="Normalise"/>) and <c>a = alpha</c>, or <c>alpha·(0.35 + 0.65·s)</c> with
    /// <paramref name="weightBySaliency"/>.
    /// </summary>
    /// <param name="pixels">Row-major pixels, 3 (RGB) or 4 (RGBA, straight alpha) bytes each; a transparent pixel is shown over white.</param>
    /// <param name="channels">3 or 4.</param>
    /// <param name="map">One value per pixel (already at the image's size).</param>
    /// <param name="alpha">Opacity of the heat map, in [0, 1].</param>
    /// <param name="weightBySaliency">Scale the opacity by the saliency, so that cold regions keep the image visible.</param>
    /// <returns>Opaque RGBA bytes, row-major.</returns>
    public static byte[] Blend(ReadOnlySpan<byte> pixels, int channels, ReadOnlySpan<float> map, float alpha, bool weightBySaliency = false)
    {
        if (channels is not (3 or 4)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "Pixels have 3 (RGB) or 4 (RGBA) bytes.");
        if (pixels.Length != map.Length * channels)
            throw new ArgumentException($"{pixels.Length} bytes of pixels do not fit a map of {map.Length} values at {channels} bytes a pixel.", nameof(pixels));
        if (!(alpha >= 0 && alpha <= 1)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "The opacity must be in [0, 1].");
        var norm = Normalise(map);
        var rgba = new byte[norm.Length * 4];
        for (int i = 0; i < norm.Length; i++)
        {
            var (r, g, b) = Jet(norm[i]);
            float a = weightBySaliency ? alpha * (0.35f + 0.65f * norm[i]) : alpha, keep = 1f - a;
            int p = i * channels;
            // Transparent source pixels are shown over white.
            float opacity = channels == 4 ? pixels[p + 3] / 255f : 1f, white = 255 * (1 - opacity);
            rgba[i * 4] = (byte)MathF.Round(keep * (pixels[p] * opacity + white) + a * r);
            rgba[i * 4 + 1] = (byte)MathF.Round(keep * (pixels[p + 1] * opacity + white) + a * g);
            rgba[i * 4 + 2] = (byte)MathF.Round(keep * (pixels[p + 2] * opacity + white) + a * b);
            rgba[i * 4 + 3] = 255;
        }
        return rgba;
    }

    /// <summary>A bitmap of row-major RGBA bytes (straight alpha).</summary>
    public static SKBitmap ToBitmap(byte[] rgba, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(rgba);
        if (width <= 0 || height <= 0 || rgba.Length != width * height * 4)
            throw new ArgumentException($"{rgba.Length} bytes cannot be a {width}×{height} RGBA image.", nameof(rgba));
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        return bitmap;
    }

    /// <summary>A greyscale image from values in [0, 1] (e.g. a one-channel input).</summary>
    public static SKBitmap Grey(ReadOnlySpan<float> pixels, int width, int height)
    {
        if (pixels.Length != width * height)
            throw new ArgumentException($"{pixels.Length} values cannot be {width}×{height}.", nameof(pixels));
        var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                byte v = (byte)Math.Round(255 * Math.Clamp(pixels[y * width + x], 0f, 1f));
                bitmap.SetPixel(x, y, new SKColor(v, v, v));
            }
        return bitmap;
    }

    /// <summary>An RGB image from planar [3, H, W] values in [0, 1].</summary>
    public static SKBitmap Rgb(ReadOnlySpan<float> planar, int width, int height)
    {
        int plane = width * height;
        if (planar.Length != 3 * plane)
            throw new ArgumentException($"{planar.Length} values cannot be 3×{height}×{width}.", nameof(planar));
        var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int i = y * width + x;
                bitmap.SetPixel(x, y, new SKColor(ToByte(planar[i]), ToByte(planar[plane + i]), ToByte(planar[2 * plane + i])));
            }
        return bitmap;
    }

    private static byte ToByte(float v) => (byte)Math.Round(255 * Math.Clamp(float.IsNaN(v) ? 0 : v, 0f, 1f));
}
