using System.Runtime.InteropServices;
using Ebp.Datasets;
using Ebp.Visualization;
using SkiaSharp;

namespace Ebp.Audit;

/// <summary>The annotated boxes of one image in image pixels (0-based, exclusive right/bottom), with their class.</summary>
/// <param name="Class">The model class index of the box, or −1 for a name that is not a model class.</param>
internal readonly record struct ImageBox(int Class, BoundingBox Box);

/// <summary>The numbers of one map, measured on the map resized to the image.</summary>
internal readonly record struct MapMeasures(int PeakX, int PeakY, bool Empty, double? Energy, bool? Hit, bool? PeakInObject);

/// <summary>Peak, energy share and pointing game of a saliency map against an image's annotation.</summary>
internal static class MapAnalysis
{
    /// <summary>The map resized (bilinear, half-pixel centres) from the model input to the image size.</summary>
    public static float[] ToImage(ReadOnlySpan<float> map, int mapWidth, int mapHeight, int width, int height) =>
        mapWidth == width && mapHeight == height ? map.ToArray() : Heatmap.ResizeBilinear(map, mapWidth, mapHeight, width, height);

    /// <summary>The union of the boxes (of one class, or all when <paramref name="classIndex"/> is null), clipped to the image.</summary>
    public static bool[] Mask(IReadOnlyList<ImageBox> boxes, int? classIndex, int width, int height)
    {
        var mask = new bool[width * height];
        foreach (var b in boxes)
        {
            if (classIndex is { } c && b.Class != c) continue;
            var box = b.Box.ClipTo(width, height);
            if (box.IsEmpty) continue;
            for (int y = box.Y; y < box.Bottom; y++) mask.AsSpan(y * width + box.X, box.Width).Fill(true);
        }
        return mask;
    }

    /// <summary>
    /// <list type="bullet">
    /// <item>peak: the first maximum in row-major order (<see cref="PointingGame.ArgMax"/>); (−1, −1) for an empty map;</item>
    /// <item>empty: the positive mass Σ max(v, 0) is 0 or not finite;</item>
    /// <item>energy: Σ max(v, 0) inside <paramref name="classMask"/> / the positive mass (null without class boxes or for an empty map);</item>
    /// <item>hit: <see cref="PointingGame.IsHit"/> of the peak on the class mask with <paramref name="tolerance"/> (null without
    /// class boxes; an empty map misses);</item>
    /// <item>peak in object: the peak lies on, or within <paramref name="tolerance"/> of, <paramref name="objectMask"/> (the
    /// union of all boxes; the same test as the pointing game, so a hit is never "outside every object"); null without
    /// objects or for an empty map.</item>
    /// </list>
    /// </summary>
    public static MapMeasures Measure(float[] map, int width, int height, bool[]? classMask, bool[]? objectMask, double tolerance)
    {
        double mass = 0, inside = 0;
        for (int i = 0; i < map.Length; i++)
        {
            float v = map[i];
            if (!(v > 0) || !float.IsFinite(v)) continue;
            mass += v;
            if (classMask is not null && classMask[i]) inside += v;
        }
        bool empty = !(mass > 0) || !double.IsFinite(mass);
        int px = -1, py = -1;
        if (!empty) (px, py) = PointingGame.ArgMax(map, width, height);
        double? energy = classMask is not null && !empty ? inside / mass : null;
        bool? hit = classMask is null ? null : !empty && PointingGame.IsHit(classMask, width, height, px, py, tolerance);
        bool? inObject = objectMask is null || empty ? null : PointingGame.IsHit(objectMask, width, height, px, py, tolerance);
        return new MapMeasures(px, py, empty, energy, hit, inObject);
    }

    /// <summary>
    /// Writes the overlay PNG (atomically): the jet heat map (normalised to its maximum) blended over the image with
    /// opacity <paramref name="alpha"/>, the boxes of the explained class outlined in green, other boxes in grey, and
    /// the peak marked with a white cross.
    /// </summary>
    public static void SaveOverlay(string path, DecodedImage image, float[] map, IReadOnlyList<ImageBox> boxes, int classIndex,
                                   int peakX, int peakY, float alpha)
    {
        int w = image.Width, h = image.Height;
        var rgba = Heatmap.Blend(image.Rgba, 4, map, alpha);
        int thickness = Math.Max(1, Math.Max(w, h) / 200);
        foreach (var box in boxes.OrderBy(b => b.Class == classIndex))
        {
            var color = box.Class == classIndex ? ((byte)0, (byte)230, (byte)64) : ((byte)170, (byte)170, (byte)170);
            Rectangle(rgba, w, h, box.Box, thickness, color);
        }
        if (peakX >= 0)
        {
            int arm = Math.Max(2, Math.Max(w, h) / 40);
            for (int d = -arm; d <= arm; d++)
            {
                Put(rgba, w, h, peakX + d, peakY, (255, 255, 255));
                Put(rgba, w, h, peakX, peakY + d, (255, 255, 255));
            }
        }
        using var bitmap = Heatmap.ToBitmap(rgba, w, h);
        Figure.SavePng(bitmap, path);
    }

    private static void Rectangle(byte[] rgba, int w, int h, BoundingBox b, int t, (byte, byte, byte) c)
    {
        for (int k = 0; k < t; k++)
        {
            int x0 = b.X + k, y0 = b.Y + k, x1 = b.Right - 1 - k, y1 = b.Bottom - 1 - k;
            if (x0 > x1 || y0 > y1) break;
            for (int x = x0; x <= x1; x++) { Put(rgba, w, h, x, y0, c); Put(rgba, w, h, x, y1, c); }
            for (int y = y0; y <= y1; y++) { Put(rgba, w, h, x0, y, c); Put(rgba, w, h, x1, y, c); }
        }
    }

    private static void Put(byte[] rgba, int w, int h, int x, int y, (byte R, byte G, byte B) c)
    {
        if (x < 0 || y < 0 || x >= w || y >= h) return;
        int i = (y * w + x) * 4;
        rgba[i] = c.R;
        rgba[i + 1] = c.G;
        rgba[i + 2] = c.B;
    }
}
