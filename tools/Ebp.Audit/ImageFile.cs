using System.Runtime.InteropServices;
using Microsoft.ML.Data;
using SkiaSharp;

namespace Ebp.Audit;

/// <summary>A fully decoded image: RGBA bytes (straight alpha), row-major.</summary>
public sealed class DecodedImage
{
    public DecodedImage(int width, int height, byte[] rgba, string format = "")
    {
        Width = width;
        Height = height;
        Rgba = rgba;
        Format = format;
    }

    /// <summary>The format the content is in (<c>png</c>, <c>jpeg</c>, …), whatever the file name says.</summary>
    public string Format { get; }

    public int Width { get; }
    public int Height { get; }
    public byte[] Rgba { get; }

    /// <summary>An <see cref="MLImage"/> of the pixels (the stage converts it to the model's channels). Dispose it.</summary>
    public MLImage ToMLImage() => MLImage.CreateFromPixels(Width, Height, MLPixelFormat.Rgba32, Rgba);
}

/// <summary>
/// Reads and validates image files before they reach the stage. A file that is missing, unreadable, empty, not an
/// image, truncated or otherwise undecodable is rejected with a reason, instead of being half-decoded (SkiaSharp
/// returns partial pixels for a truncated PNG or JPEG).
/// </summary>
public static class ImageFile
{
    /// <summary>The largest image side accepted (protects against decompression bombs).</summary>
    public const int MaxSide = 16384;

    /// <summary>Decodes <paramref name="path"/> completely, or returns the reason it cannot be used.</summary>
    public static DecodedImage? TryDecode(string path, out string? error)
    {
        error = null;
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (FileNotFoundException) { error = "file not found"; return null; }
        catch (DirectoryNotFoundException) { error = "file not found"; return null; }
        catch (UnauthorizedAccessException e) { error = $"unreadable: {e.Message}"; return null; }
        catch (IOException e) { error = $"unreadable: {e.Message}"; return null; }
        if (bytes.Length == 0) { error = "empty file"; return null; }

        using var codec = SKCodec.Create(new SKMemoryStream(bytes), out var result);
        if (codec is null)
        {
            error = result == SKCodecResult.IncompleteInput
                ? "truncated image (incomplete header)"
                : $"not a supported image ({Describe(result)})";
            return null;
        }
        var info = codec.Info;
        if (info.Width < 1 || info.Height < 1 || info.Width > MaxSide || info.Height > MaxSide)
        {
            error = $"image size {info.Width}×{info.Height} is outside 1..{MaxSide}";
            return null;
        }
        var target = new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[target.BytesSize];
        var handle = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        SKCodecResult decode;
        try
        {
            decode = codec.GetPixels(target, handle.AddrOfPinnedObject());
        }
        finally
        {
            handle.Free();
        }
        if (decode != SKCodecResult.Success)
        {
            error = decode == SKCodecResult.IncompleteInput
                ? $"truncated {codec.EncodedFormat} image (the data ends before the last row)"
                : $"{codec.EncodedFormat} image could not be decoded ({Describe(decode)})";
            return null;
        }
        return new DecodedImage(info.Width, info.Height, rgba, codec.EncodedFormat.ToString().ToLowerInvariant());
    }

    /// <summary>
    /// A note when the file name's extension names another format than the content (a JPEG named <c>.png</c>), or null.
    /// Such files are processed (the content decides), but an auditor should know the name is wrong.
    /// </summary>
    public static string? ExtensionMismatch(string path, string format)
    {
        var ext = Path.GetExtension(path).TrimStart('.').ToLowerInvariant();
        string? named = ext switch
        {
            "png" => "png",
            "jpg" or "jpeg" => "jpeg",
            "bmp" => "bmp",
            "gif" => "gif",
            "webp" => "webp",
            _ => null,
        };
        if (named is null || format.Length == 0 || named == format) return null;
        return $"the file is named .{ext} but holds a {format.ToUpperInvariant()} image (processed as {format.ToUpperInvariant()})";
    }

    private static string Describe(SKCodecResult r) => r switch
    {
        SKCodecResult.InvalidInput => "invalid data",
        SKCodecResult.IncompleteInput => "incomplete data",
        SKCodecResult.Unimplemented => "unknown format",
        SKCodecResult.ErrorInInput => "corrupt data",
        SKCodecResult.InvalidConversion => "unsupported pixel format",
        _ => r.ToString(),
    };
}
