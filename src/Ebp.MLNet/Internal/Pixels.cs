using System.Runtime.InteropServices;
using Microsoft.ML.Data;
using SkiaSharp;

namespace Ebp.MLNet.Internal;

/// <summary>Conversions between <see cref="MLImage"/>, planar float model input and RGB display bytes.</summary>
internal static class Pixels
{
    /// <summary>
    /// Fills <paramref name="planar"/> <c>[3, H, W]</c> with <c>(byte · Scale − Mean[c]) / Std[c]</c> in the configured
    /// channel order, resizing the image first if its size differs from the configured one. Optionally copies the
    /// (resized) RGB bytes into <paramref name="display"/>.
    /// </summary>
    public static void FromImage(MLImage image, StageConfig c, float[] planar, byte[]? display)
    {
        int w = c.ImageWidth, h = c.ImageHeight;
        byte[]? resized = null;
        ReadOnlySpan<byte> px;
        int r, g, b;
        switch (image.PixelFormat)
        {
            case MLPixelFormat.Bgra32: (r, g, b) = (2, 1, 0); break;
            case MLPixelFormat.Rgba32: (r, g, b) = (0, 1, 2); break;
            default: throw new InvalidDataException($"Unsupported MLImage pixel format {image.PixelFormat}.");
        }
        if (image.Width != w || image.Height != h)
        {
            resized = Resize(image, w, h);
            px = resized;
        }
        else
        {
            px = image.Pixels;
        }
        if (px.Length < w * h * 4)
            throw new InvalidDataException($"The image has {px.Length} bytes of pixels; {w}×{h} needs {w * h * 4}.");

        int plane = w * h;
        if (c.Channels == 1)
        {
            // Grey models: ITU-R BT.601 luma of the colour image (exactly the grey value for a grey image).
            float mean = c.Mean[0], std = c.Std[0], scale = c.Scale;
            var dst = planar.AsSpan(0, plane);
            for (int i = 0; i < plane; i++)
                dst[i] = ((0.299f * px[i * 4 + r] + 0.587f * px[i * 4 + g] + 0.114f * px[i * 4 + b]) * scale - mean) / std;
        }
        int[] src = c.ChannelOrder == ChannelOrder.Rgb ? [r, g, b] : [b, g, r];
        for (int ch = 0; ch < 3 && c.Channels == 3; ch++)
        {
            float mean = c.Mean[ch], std = c.Std[ch], scale = c.Scale;
            int s = src[ch];
            var dst = planar.AsSpan(ch * plane, plane);
            for (int i = 0; i < plane; i++)
                dst[i] = (px[i * 4 + s] * scale - mean) / std;
        }
        if (display is not null)
        {
            for (int i = 0; i < plane; i++)
            {
                display[i * 3] = px[i * 4 + r];
                display[i * 3 + 1] = px[i * 4 + g];
                display[i * 3 + 2] = px[i * 4 + b];
            }
        }
    }

    /// <summary>Applies <c>(v − Mean[c]) / Std[c]</c> to planar vector input.</summary>
    public static void NormaliseInPlace(float[] planar, StageConfig c)
    {
        int plane = c.ImageWidth * c.ImageHeight;
        for (int ch = 0; ch < c.Channels; ch++)
        {
            float mean = c.Mean[ch], std = c.Std[ch];
            if (mean == 0f && std == 1f) continue;
            var span = planar.AsSpan(ch * plane, plane);
            for (int i = 0; i < span.Length; i++) span[i] = (span[i] - mean) / std;
        }
    }

    /// <summary>Turns raw planar vector input (before Mean/Std) back into RGB bytes: <c>v / Scale</c>, clamped.</summary>
    public static void VectorToDisplay(float[] planar, StageConfig c, byte[] display)
    {
        int plane = c.ImageWidth * c.ImageHeight;
        int[] planeOf = c.Channels == 1 ? [0, 0, 0] : c.ChannelOrder == ChannelOrder.Rgb ? [0, 1, 2] : [2, 1, 0]; // plane holding R, G, B
        for (int k = 0; k < 3; k++)
        {
            int off = planeOf[k] * plane;
            for (int i = 0; i < plane; i++)
            {
                float v = planar[off + i] / c.Scale;
                display[i * 3 + k] = float.IsFinite(v) ? (byte)Math.Clamp(MathF.Round(v), 0f, 255f) : (byte)0;
            }
        }
    }

    private static byte[] Resize(MLImage image, int width, int height)
    {
        var colorType = image.PixelFormat == MLPixelFormat.Bgra32 ? SKColorType.Bgra8888 : SKColorType.Rgba8888;
        var srcInfo = new SKImageInfo(image.Width, image.Height, colorType, SKAlphaType.Unpremul);
        using var src = new SKBitmap(srcInfo);
        var bytes = image.Pixels;
        if (bytes.Length < srcInfo.BytesSize)
            throw new InvalidDataException($"The image has {bytes.Length} bytes of pixels; {image.Width}×{image.Height} needs {srcInfo.BytesSize}.");
        Marshal.Copy(bytes[..srcInfo.BytesSize].ToArray(), 0, src.GetPixels(), srcInfo.BytesSize);
        using var dst = src.Resize(new SKImageInfo(width, height, colorType, SKAlphaType.Unpremul), SKFilterQuality.Medium)
                        ?? throw new InvalidDataException($"The image could not be resized to {width}×{height}.");
        if (dst.RowBytes != width * 4)
            throw new InvalidDataException($"Unexpected row stride {dst.RowBytes} after resizing to {width}×{height}.");
        return dst.GetPixelSpan()[..(width * height * 4)].ToArray();
    }
}
