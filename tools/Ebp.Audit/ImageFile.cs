using System.Runtime.InteropServices;
using Microsoft.ML.Data;
using SkiaSharp;

namespace Ebp.Audit;

/// <summary>A fully decoded image: RGBA bytes (straight alpha), row-major.</summary>
internal sealed class DecodedImage
{
    public DecodedImage(int width, int height, byte[] rgba, string format = "", int? originalWidth = null, int? originalHeight = null)
    {
        Width = width;
        Height = height;
        Rgba = rgba;
        Format = format;
        OriginalWidth = originalWidth ?? width;
        OriginalHeight = originalHeight ?? height;
    }

    /// <summary>The file's own size; <see cref="Width"/> × <see cref="Height"/> is smaller when it was decoded downscaled.</summary>
    public int OriginalWidth { get; }

    /// <inheritdoc cref="OriginalWidth"/>
    public int OriginalHeight { get; }

    /// <summary>Whether the pixels are a downscaled version of the file.</summary>
    public bool Downscaled => Width != OriginalWidth || Height != OriginalHeight;

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
internal static class ImageFile
{
    /// <summary>The largest image side accepted (protects against decompression bombs).</summary>
    public const int MaxSide = 16384;

    /// <summary>
    /// Decodes <paramref name="path"/> completely, or returns the reason it cannot be used. An image whose longer side
    /// exceeds <paramref name="maxSide"/> is decoded downscaled (aspect kept, longer side = <paramref name="maxSide"/>),
    /// row by row with an area filter, so memory stays bounded by the target size plus one source row.
    /// </summary>
    public static DecodedImage? TryDecode(string path, out string? error, int maxSide = int.MaxValue)
    {
        if (maxSide < 1) throw new ArgumentOutOfRangeException(nameof(maxSide), maxSide, "must be positive");
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
        if (Math.Max(info.Width, info.Height) > maxSide) return DecodeDownscaled(codec, maxSide, out error);
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

    /// <summary>The size of a <paramref name="width"/> × <paramref name="height"/> image whose longer side is brought to <paramref name="maxSide"/>.</summary>
    public static (int Width, int Height) Fit(int width, int height, int maxSide)
    {
        if (Math.Max(width, height) <= maxSide) return (width, height);
        double f = (double)maxSide / Math.Max(width, height);
        return (Math.Max(1, (int)Math.Round(width * f)), Math.Max(1, (int)Math.Round(height * f)));
    }

    /// <summary>
    /// A box (area-average) filter into the fitted size, fed row by row: by scanline decoding where the codec supports it
    /// (JPEG: the full-resolution image never exists in memory), else from one whole decode in native memory that is freed
    /// at once (PNG in this Skia build: at most 4 bytes per pixel, once). The maps, masks and overlays, which cost several
    /// times the pixels, only ever exist at the fitted size. A truncated file is rejected like in the full decode.
    /// </summary>
    private static DecodedImage? DecodeDownscaled(SKCodec codec, int maxSide, out string? error)
    {
        error = null;
        var info = codec.Info;
        int sw = info.Width, sh = info.Height;
        var (tw, th) = Fit(sw, sh, maxSide);
        var rowInfo = new SKImageInfo(sw, sh, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var row = new byte[sw * 4];
        var sums = new double[tw * 4];
        var counts = new int[tw];
        var rgba = new byte[tw * th * 4];
        var column = new int[sw];
        for (int x = 0; x < sw; x++) column[x] = (int)((long)x * tw / sw);
        var handle = GCHandle.Alloc(row, GCHandleType.Pinned);
        IntPtr whole = IntPtr.Zero;
        try
        {
            Func<int, bool> readRow;
            if (codec.StartScanlineDecode(rowInfo) == SKCodecResult.Success && codec.ScanlineOrder == SKCodecScanlineOrder.TopDown)
            {
                readRow = _ => codec.GetScanlines(handle.AddrOfPinnedObject(), 1, row.Length) == 1;
            }
            else
            {
                // This Skia build decodes PNG only whole: decode into native memory (freed right after), average from there.
                whole = Marshal.AllocHGlobal((nint)rowInfo.BytesSize64);
                var decode = codec.GetPixels(rowInfo, whole);
                if (decode != SKCodecResult.Success)
                {
                    error = decode == SKCodecResult.IncompleteInput
                        ? $"truncated {codec.EncodedFormat} image (the data ends before the last row)"
                        : $"{codec.EncodedFormat} image could not be decoded ({Describe(decode)})";
                    return null;
                }
                readRow = y =>
                {
                    Marshal.Copy(whole + (nint)((long)y * row.Length), row, 0, row.Length);
                    return true;
                };
            }
            int currentTarget = 0;
            for (int y = 0; y < sh; y++)
            {
                int ty = (int)((long)y * th / sh);
                if (ty != currentTarget)
                {
                    Flush(currentTarget);
                    currentTarget = ty;
                }
                if (!readRow(y))
                {
                    error = $"truncated {codec.EncodedFormat} image (the data ends before the last row)";
                    return null;
                }
                for (int x = 0; x < sw; x++)
                {
                    int t = column[x];
                    counts[t]++;
                    for (int k = 0; k < 4; k++) sums[4 * t + k] += row[4 * x + k];
                }
            }
            Flush(currentTarget);
        }
        finally
        {
            handle.Free();
            if (whole != IntPtr.Zero) Marshal.FreeHGlobal(whole);
        }
        return new DecodedImage(tw, th, rgba, codec.EncodedFormat.ToString().ToLowerInvariant(), sw, sh);

        void Flush(int ty)
        {
            for (int t = 0; t < tw; t++)
            {
                for (int k = 0; k < 4; k++)
                    rgba[(ty * tw + t) * 4 + k] = counts[t] == 0 ? (byte)0 : (byte)Math.Round(sums[4 * t + k] / counts[t]);
                counts[t] = 0;
            }
            Array.Clear(sums);
        }
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
