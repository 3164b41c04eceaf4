using System.Buffers.Binary;
using System.IO.Compression;

namespace Ebp.Datasets;

/// <summary>Writes IDX image/label files in the layout <see cref="IdxReader"/> reads (optionally gzipped).</summary>
internal static class IdxWriter
{
    /// <summary>Writes <paramref name="count"/> images of rows x cols bytes as an IDX3 file.</summary>
    public static void WriteImages(string path, int count, int rows, int cols, ReadOnlySpan<byte> pixels, bool gzip = false)
    {
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        WriteImages(file, count, rows, cols, pixels, gzip);
    }

    /// <summary>Writes <paramref name="count"/> images of rows x cols bytes as IDX3 to a stream (left open).</summary>
    public static void WriteImages(Stream stream, int count, int rows, int cols, ReadOnlySpan<byte> pixels, bool gzip = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (count < 0 || rows <= 0 || cols <= 0) throw new ArgumentException($"Invalid dimensions {count} x {rows}x{cols}.");
        if ((long)count * rows * cols != pixels.Length)
            throw new ArgumentException($"{count} images of {rows}x{cols} need {(long)count * rows * cols} bytes, got {pixels.Length}.");
        Span<byte> header = stackalloc byte[16];
        BinaryPrimitives.WriteInt32BigEndian(header, IdxReader.ImagesMagic);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], count);
        BinaryPrimitives.WriteInt32BigEndian(header[8..], rows);
        BinaryPrimitives.WriteInt32BigEndian(header[12..], cols);
        Write(stream, header, pixels, gzip);
    }

    /// <summary>Writes labels as an IDX1 file.</summary>
    public static void WriteLabels(string path, ReadOnlySpan<byte> labels, bool gzip = false)
    {
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        WriteLabels(file, labels, gzip);
    }

    /// <summary>Writes labels as IDX1 to a stream (left open).</summary>
    public static void WriteLabels(Stream stream, ReadOnlySpan<byte> labels, bool gzip = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> header = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(header, IdxReader.LabelsMagic);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], labels.Length);
        Write(stream, header, labels, gzip);
    }

    /// <summary>Writes a whole set as an images file and a labels file.</summary>
    public static void WriteSet(MnistSet set, string imagesPath, string labelsPath, bool gzip = false)
    {
        ArgumentNullException.ThrowIfNull(set);
        WriteImages(imagesPath, set.Count, set.Rows, set.Cols, set.Pixels, gzip);
        WriteLabels(labelsPath, set.Labels, gzip);
    }

    private static void Write(Stream stream, ReadOnlySpan<byte> header, ReadOnlySpan<byte> body, bool gzip)
    {
        if (!gzip)
        {
            stream.Write(header);
            stream.Write(body);
            return;
        }

        using var z = new GZipStream(stream, CompressionLevel.SmallestSize, leaveOpen: true);
        z.Write(header);
        z.Write(body);
    }
}
