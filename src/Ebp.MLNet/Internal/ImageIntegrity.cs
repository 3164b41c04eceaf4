using Microsoft.ML.Data;
using SkiaSharp;

namespace Ebp.MLNet.Internal;

/// <summary>
/// Whether an <c>MLImage</c> is a whole image. SkiaSharp (behind <c>LoadImages</c>) decodes a truncated PNG or JPEG
/// without error, filling the missing part with zeros, so the stage checks the file the image came from
/// (<c>MLImage.Tag</c>, which <c>LoadImages</c> and <c>ResizeImages</c> set to the path) with SkiaSharp's codec, which
/// does report incomplete input.
/// </summary>
internal static class ImageIntegrity
{
    /// <summary>Null for a usable image; otherwise what is wrong with it ("is …", for a row error).</summary>
    public static string? Problem(MLImage image)
    {
        if (image.Width <= 0 || image.Height <= 0) return $"is empty ({image.Width}×{image.Height})";
        var path = image.Tag;
        if (string.IsNullOrEmpty(path) || !File.Exists(path)) return null; // made in memory: nothing to check against
        using var codec = SKCodec.Create(path, out var created);
        if (codec is null) return $"could not be read: the file '{path}' is not a complete image ({created})";
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        var result = codec.GetPixels(info, bitmap.GetPixels());
        return result == SKCodecResult.Success ? null
            : $"could not be read: the file '{path}' is truncated or damaged (SkiaSharp: {result})";
    }
}
