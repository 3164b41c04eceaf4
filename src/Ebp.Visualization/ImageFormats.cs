namespace Ebp.Visualization;

/// <summary>The image files Ebp reads (the formats SkiaSharp decodes), by file extension.</summary>
public static class ImageFormats
{
    /// <summary>The extensions, lower case with the dot, in the order tried when a file name lacks one.</summary>
    public static IReadOnlyList<string> Extensions { get; } = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"];

    private static readonly HashSet<string> Set = new(Extensions, StringComparer.OrdinalIgnoreCase);

    /// <summary>Whether <paramref name="path"/> has one of <see cref="Extensions"/> (any case).</summary>
    public static bool IsImageFile(string path) => Set.Contains(Path.GetExtension(path));
}
