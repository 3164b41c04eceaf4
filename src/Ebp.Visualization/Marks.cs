using SkiaSharp;

namespace Ebp.Visualization;

/// <summary>
/// Marks drawn into a bitmap pixel by pixel (no anti-aliasing, so the same input always gives the same bytes): box
/// outlines and a peak marker. Anything outside the bitmap is clipped.
/// </summary>
public static class Marks
{
    /// <summary>
    /// Outlines the box [<paramref name="x"/>, x + <paramref name="width"/>) × [<paramref name="y"/>, y + <paramref name="height"/>)
    /// with lines <paramref name="thickness"/> pixels wide, drawn inside the box so that it covers exactly the annotated pixels' rim.
    /// </summary>
    public static void Box(SKBitmap bitmap, int x, int y, int width, int height, SKColor color, int thickness = 1)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        for (int k = 0; k < Math.Max(1, thickness); k++)
        {
            int x0 = x + k, y0 = y + k, x1 = x + width - 1 - k, y1 = y + height - 1 - k;
            if (x0 > x1 || y0 > y1) break;
            for (int i = x0; i <= x1; i++) { Put(bitmap, i, y0, color); Put(bitmap, i, y1, color); }
            for (int j = y0; j <= y1; j++) { Put(bitmap, x0, j, color); Put(bitmap, x1, j, color); }
        }
    }

    /// <summary>
    /// A cross centred on (<paramref name="x"/>, <paramref name="y"/>) with arms of <paramref name="arm"/> pixels, in
    /// <paramref name="color"/> with a one-pixel <paramref name="outline"/> around it, so that it stays visible on any
    /// heat-map colour.
    /// </summary>
    public static void Cross(SKBitmap bitmap, int x, int y, int arm, SKColor color, SKColor outline)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        arm = Math.Max(1, arm);
        for (int d = -arm - 1; d <= arm + 1; d++)
            for (int o = -1; o <= 1; o++)
            {
                Put(bitmap, x + d, y + o, outline);
                Put(bitmap, x + o, y + d, outline);
            }
        for (int d = -arm; d <= arm; d++)
        {
            Put(bitmap, x + d, y, color);
            Put(bitmap, x, y + d, color);
        }
    }

    private static void Put(SKBitmap bitmap, int x, int y, SKColor color)
    {
        if (x < 0 || y < 0 || x >= bitmap.Width || y >= bitmap.Height) return;
        bitmap.SetPixel(x, y, color);
    }
}
