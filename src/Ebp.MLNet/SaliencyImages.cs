using System.Runtime.InteropServices;
using Microsoft.ML.Data;
using Ebp.Visualization;
using SkiaSharp;

namespace Ebp.MLNet;

/// <summary>
/// Heat maps, overlays and PNG files for saliency maps (row-major <c>[height, width]</c> floats, as in the saliency
/// column). Uses SkiaSharp, the image library of ML.NET's <c>MLImage</c>.
/// </summary>
public static class SaliencyImages
{
    /// <summary>
    /// The colour of a normalised value in [0, 1] on the "jet" scale (blue → cyan → yellow → red).
    /// </summary>
    public static (byte R, byte G, byte B) Jet(float t) => Heatmap.Jet(t);

    /// <summary>
    /// The map scaled to [0, 1] by its maximum: negative values and NaN become 0, and an all-zero (or all-negative)
    /// map stays 0.
    /// </summary>
    public static float[] Normalise(ReadOnlySpan<float> map) => Heatmap.Normalise(map);

    /// <summary>The position of the map's maximum (first in row-major order); (−1, −1) if the map has no finite value.</summary>
    public static (int X, int Y) Peak(ReadOnlySpan<float> map, int width, int height)
    {
        CheckSize(map, width, height);
        int best = -1;
        float bestValue = float.NegativeInfinity;
        for (int i = 0; i < map.Length; i++)
            if (float.IsFinite(map[i]) && (best < 0 || map[i] > bestValue)) { best = i; bestValue = map[i]; }
        return best < 0 ? (-1, -1) : (best % width, best / width);
    }

    /// <summary>A heat map image of <paramref name="map"/> (normalised to its maximum, jet colours).</summary>
    public static MLImage CreateHeatmap(ReadOnlySpan<float> map, int width, int height)
    {
        CheckSize(map, width, height);
        var norm = Normalise(map);
        var rgba = new byte[width * height * 4];
        for (int i = 0; i < norm.Length; i++)
        {
            var (r, g, b) = Jet(norm[i]);
            rgba[i * 4] = r; rgba[i * 4 + 1] = g; rgba[i * 4 + 2] = b; rgba[i * 4 + 3] = 255;
        }
        return MLImage.CreateFromPixels(width, height, MLPixelFormat.Rgba32, rgba);
    }

    /// <summary>
    /// The heat map of <paramref name="map"/> blended over <paramref name="image"/> with opacity <paramref name="alpha"/>.
    /// The map is resized (bilinear) to the image's size if needed.
    /// </summary>
    public static MLImage CreateOverlay(MLImage image, ReadOnlySpan<float> map, int mapWidth, int mapHeight, float alpha = 0.5f)
    {
        ArgumentNullException.ThrowIfNull(image);
        CheckSize(map, mapWidth, mapHeight);
        int w = image.Width, h = image.Height;
        var rgb = ToRgb(image);
        var resized = mapWidth == w && mapHeight == h ? map.ToArray() : Heatmap.ResizeBilinear(map, mapWidth, mapHeight, w, h);
        return Blend(rgb, resized, w, h, alpha);
    }

    /// <summary>Writes <paramref name="image"/> as a PNG file atomically (creating the folder if needed).</summary>
    public static void SavePng(MLImage image, string path)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var colorType = image.PixelFormat switch
        {
            MLPixelFormat.Bgra32 => SKColorType.Bgra8888,
            MLPixelFormat.Rgba32 => SKColorType.Rgba8888,
            _ => throw new ArgumentException($"Unsupported MLImage pixel format {image.PixelFormat}.", nameof(image)),
        };
        var info = new SKImageInfo(image.Width, image.Height, colorType, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        var pixels = image.Pixels;
        if (pixels.Length < info.BytesSize)
            throw new ArgumentException($"The image has {pixels.Length} bytes of pixels; {image.Width}×{image.Height} needs {info.BytesSize}.", nameof(image));
        Marshal.Copy(pixels[..info.BytesSize].ToArray(), 0, bitmap.GetPixels(), info.BytesSize);
        Figure.SavePng(bitmap, path); // atomic: no half-written PNG after a crash
    }

    /// <summary>Writes the heat map of <paramref name="map"/> as a PNG file.</summary>
    public static void SaveHeatmapPng(ReadOnlySpan<float> map, int width, int height, string path)
    {
        using var image = CreateHeatmap(map, width, height);
        SavePng(image, path);
    }

    internal static MLImage Blend(byte[] rgb, ReadOnlySpan<float> map, int width, int height, float alpha)
        => MLImage.CreateFromPixels(width, height, MLPixelFormat.Rgba32, Heatmap.Blend(rgb, 3, map, alpha));

    private static byte[] ToRgb(MLImage image)
    {
        var (r, g, b) = image.PixelFormat switch
        {
            MLPixelFormat.Bgra32 => (2, 1, 0),
            MLPixelFormat.Rgba32 => (0, 1, 2),
            _ => throw new ArgumentException($"Unsupported MLImage pixel format {image.PixelFormat}.", nameof(image)),
        };
        var px = image.Pixels;
        int n = image.Width * image.Height;
        var rgb = new byte[n * 3];
        for (int i = 0; i < n; i++)
        {
            rgb[i * 3] = px[i * 4 + r];
            rgb[i * 3 + 1] = px[i * 4 + g];
            rgb[i * 3 + 2] = px[i * 4 + b];
        }
        return rgb;
    }

    private static void CheckSize(ReadOnlySpan<float> map, int width, int height)
    {
        if (width <= 0 || height <= 0 || map.Length != width * height)
            throw new ArgumentException($"A {width}×{height} map needs {(long)Math.Max(width, 0) * Math.Max(height, 0)} values; got {map.Length}.", nameof(map));
    }
}
