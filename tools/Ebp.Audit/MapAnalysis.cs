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
    /// <item>peak: the first maximum in row-major order (<see cref="Datasets.PointingGame.ArgMax"/>); (−1, −1) for an empty map;</item>
    /// <item>empty: the positive mass Σ max(v, 0) is 0 or not finite;</item>
    /// <item>energy: Σ max(v, 0) inside <paramref name="classMask"/> / the positive mass (null without class boxes or for an empty map);</item>
    /// <item>hit: <see cref="Datasets.PointingGame.IsHit"/> of the peak on the class mask with <paramref name="tolerance"/> (null without
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
        if (!empty) (px, py) = Datasets.PointingGame.ArgMax(map, width, height);
        double? energy = classMask is not null && !empty ? inside / mass : null;
        bool? hit = classMask is null ? null : !empty && Datasets.PointingGame.IsHit(classMask, width, height, px, py, tolerance);
        bool? inObject = objectMask is null || empty ? null : Datasets.PointingGame.IsHit(objectMask, width, height, px, py, tolerance);
        return new MapMeasures(px, py, empty, energy, hit, inObject);
    }

    /// <summary>
    /// Writes the overlay PNG (atomically): the jet heat map blended over the image (<see cref="Heatmap.Overlay"/>, opacity
    /// <paramref name="alpha"/>), the boxes of the explained class outlined in green, other boxes in grey, and the peak
    /// marked with a white cross outlined in black.
    /// </summary>
    public static void SaveOverlay(string path, DecodedImage image, float[] map, IReadOnlyList<ImageBox> boxes, int classIndex,
                                   int peakX, int peakY, float alpha)
    {
        using var source = ToBitmap(image);
        using var overlay = Heatmap.Overlay(source, map, image.Width, image.Height, alpha);
        DrawBoxes(overlay, boxes, classIndex);
        if (peakX >= 0)
            Marks.Cross(overlay, peakX, peakY, Math.Max(2, Math.Max(image.Width, image.Height) / 40), SKColors.White, SKColors.Black);
        Figure.SavePng(overlay, path);
    }

    /// <summary>The input panel of the gallery (atomically): the image with every box, model classes in green, other names in grey.</summary>
    public static void SaveInput(string path, DecodedImage image, IReadOnlyList<ImageBox> boxes)
    {
        using var bitmap = ToBitmap(image);
        DrawBoxes(bitmap, boxes, null);
        Figure.SavePng(bitmap, path);
    }

    private static readonly SKColor Explained = new(0, 230, 64), Other = new(170, 170, 170);

    /// <summary>Outlines the boxes; those of <paramref name="classIndex"/> (or, when null, of any model class) in green, on top.</summary>
    private static void DrawBoxes(SKBitmap bitmap, IReadOnlyList<ImageBox> boxes, int? classIndex)
    {
        bool Highlighted(ImageBox b) => classIndex is { } c ? b.Class == c : b.Class >= 0;
        int thickness = Math.Max(1, Math.Max(bitmap.Width, bitmap.Height) / 200);
        foreach (var box in boxes.OrderBy(Highlighted))
            Marks.Box(bitmap, box.Box.X, box.Box.Y, box.Box.Width, box.Box.Height, Highlighted(box) ? Explained : Other, thickness);
    }

    /// <summary>The decoded pixels as an opaque bitmap; transparent pixels are shown over white.</summary>
    private static SKBitmap ToBitmap(DecodedImage image)
    {
        int n = image.Width * image.Height;
        var rgba = new byte[n * 4];
        var src = image.Rgba;
        for (int i = 0; i < n; i++)
        {
            int a = src[i * 4 + 3];
            for (int k = 0; k < 3; k++) rgba[i * 4 + k] = (byte)((src[i * 4 + k] * a + 255 * (255 - a) + 127) / 255);
            rgba[i * 4 + 3] = 255;
        }
        var bitmap = new SKBitmap(new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        return bitmap;
    }
}
