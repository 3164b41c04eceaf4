using SkiaSharp;

namespace Ebp.Visualization;

/// <summary>Side-by-side figures with captions, written as PNG files.</summary>
public static class Figure
{
    /// <summary>
    /// Places panels left to right, each scaled to <paramref name="panelSize"/> pixels square (nearest
    /// neighbour, so that pixels stay visible), with a caption under each and an optional title above.
    /// </summary>
    public static SKBitmap SideBySide(IReadOnlyList<(SKBitmap Image, string Caption)> panels, int panelSize = 160, string? title = null)
    {
        const int pad = 6, captionHeight = 30;
        int titleHeight = title is null ? 0 : 24;
        int width = pad + panels.Count * (panelSize + pad);
        int height = titleHeight + pad + panelSize + captionHeight;
        var figure = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var canvas = new SKCanvas(figure);
        canvas.Clear(SKColors.White);
        using var font = new SKPaint { Color = SKColors.Black, IsAntialias = true, TextSize = 12, Typeface = Typeface() };
        if (title is not null) canvas.DrawText(Fit(title, font, width - 2 * pad), pad, 17, font);
        for (int i = 0; i < panels.Count; i++)
        {
            int x = pad + i * (panelSize + pad);
            using var image = SKImage.FromBitmap(panels[i].Image);
            canvas.DrawImage(image, new SKRect(x, titleHeight + pad, x + panelSize, titleHeight + pad + panelSize),
                new SKPaint { FilterQuality = SKFilterQuality.None });
            canvas.DrawText(Fit(panels[i].Caption, font, panelSize), x, titleHeight + pad + panelSize + 16, font);
        }
        return figure;
    }

    /// <summary>Writes a bitmap as PNG atomically (a temporary file, then a rename): no half-written file after a crash.</summary>
    public static void SavePng(SKBitmap bitmap, string path)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        AtomicFile.Write(path, stream =>
        {
            using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
            data.SaveTo(stream);
        });
    }

    private static SKTypeface? _typeface;

    /// <summary>The system's default sans font; DejaVu Sans when fontconfig finds nothing.</summary>
    private static SKTypeface Typeface()
    {
        if (_typeface is not null) return _typeface;
        var t = SKTypeface.FromFamilyName("DejaVu Sans") ?? SKTypeface.Default;
        const string dejavu = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
        if ((t is null || t.GlyphCount == 0) && File.Exists(dejavu)) t = SKTypeface.FromFile(dejavu);
        return _typeface = t ?? SKTypeface.Default;
    }

    private static string Fit(string text, SKPaint paint, float width)
    {
        if (paint.MeasureText(text) <= width) return text;
        while (text.Length > 1 && paint.MeasureText(text + "…") > width) text = text[..^1];
        return text + "…";
    }
}
