using System.Buffers.Binary;
using System.IO.Compression;

namespace Ebp.Datasets;

/// <summary>The images of an IDX3 file: <see cref="Count"/> images of <see cref="Rows"/> x <see cref="Cols"/> bytes.</summary>
public sealed record IdxImages(int Count, int Rows, int Cols, byte[] Pixels);

/// <summary>
/// Reads the IDX files of MNIST (http://yann.lecun.com/exdb/mnist/ format): a big-endian header
/// (magic 0x00000803 and three dimensions count, rows, cols for images; magic 0x00000801 and one
/// dimension count for labels) followed by exactly that many unsigned bytes.
/// A file compressed with gzip (recognised by its first two bytes 1f 8b, whatever its name) is
/// decompressed on the fly. Every inconsistency (wrong magic, zero or absurd dimensions, a file
/// shorter or longer than its header says, label/image count mismatch) throws
/// <see cref="InvalidDataException"/> naming the file.
/// </summary>
public static class IdxReader
{
    /// <summary>Magic number of an IDX file of unsigned bytes with 3 dimensions (images).</summary>
    public const int ImagesMagic = 0x00000803;

    /// <summary>Magic number of an IDX file of unsigned bytes with 1 dimension (labels).</summary>
    public const int LabelsMagic = 0x00000801;

    /// <summary>Largest accepted image side; MNIST is 28. Guards against reading garbage as a huge size.</summary>
    public const int MaxImageSide = 4096;

    /// <summary>Reads an images file and its labels file into an <see cref="MnistSet"/> of the given split.</summary>
    /// <exception cref="FileNotFoundException">A file does not exist.</exception>
    /// <exception cref="InvalidDataException">A file is corrupt, the counts differ, or a label is not 0..9.</exception>
    public static MnistSet ReadSet(string imagesPath, string labelsPath, MnistSplit split)
    {
        IdxImages images = ReadImages(imagesPath);
        byte[] labels = ReadLabels(labelsPath);
        if (images.Count != labels.Length)
            throw new InvalidDataException(
                $"'{imagesPath}' holds {images.Count} images but '{labelsPath}' holds {labels.Length} labels.");
        for (int i = 0; i < labels.Length; i++)
        {
            if (labels[i] >= MnistSet.ClassCount)
                throw new InvalidDataException($"'{labelsPath}': label {labels[i]} at index {i} is not a digit 0..9.");
        }

        return new MnistSet(split, images.Rows, images.Cols, images.Pixels, labels);
    }

    /// <summary>Reads an IDX3 images file (optionally gzipped).</summary>
    public static IdxImages ReadImages(string path)
    {
        using FileStream stream = OpenFile(path);
        return ReadImages(stream, path);
    }

    /// <summary>Reads IDX3 images from a stream (optionally gzipped); <paramref name="sourceName"/> names it in errors.</summary>
    public static IdxImages ReadImages(Stream stream, string sourceName = "<stream>")
    {
        ArgumentNullException.ThrowIfNull(stream);
        using Stream input = MaybeDecompress(stream, sourceName);
        Span<byte> header = stackalloc byte[16];
        ReadExactly(input, header, sourceName, "the 16-byte images header");
        int magic = BinaryPrimitives.ReadInt32BigEndian(header);
        if (magic != ImagesMagic)
        {
            throw new InvalidDataException(
                $"'{sourceName}' is not an IDX images file: magic number 0x{magic:X8}, expected 0x{ImagesMagic:X8}"
                + (magic == LabelsMagic ? " (this looks like a labels file)." : "."));
        }

        int count = BinaryPrimitives.ReadInt32BigEndian(header[4..]);
        int rows = BinaryPrimitives.ReadInt32BigEndian(header[8..]);
        int cols = BinaryPrimitives.ReadInt32BigEndian(header[12..]);
        if (count < 0) throw new InvalidDataException($"'{sourceName}': negative image count {count} in the header.");
        if (rows <= 0 || cols <= 0 || rows > MaxImageSide || cols > MaxImageSide)
            throw new InvalidDataException($"'{sourceName}': implausible image size {rows}x{cols} in the header.");
        long total = (long)count * rows * cols;
        if (total > Array.MaxLength)
            throw new InvalidDataException($"'{sourceName}': {count} images of {rows}x{cols} ({total} bytes) is too large to hold.");
        if (input.CanSeek && input.Length - input.Position != total)
        {
            throw new InvalidDataException(
                $"'{sourceName}': the header announces {count} images of {rows}x{cols} = {total} bytes, but the file has {input.Length - input.Position} bytes after the header.");
        }

        var pixels = new byte[total];
        ReadExactly(input, pixels, sourceName, $"{count} images of {rows}x{cols} ({total} bytes) announced by the header");
        EnsureEnd(input, sourceName, total + 16);
        return new IdxImages(count, rows, cols, pixels);
    }

    /// <summary>Reads an IDX1 labels file (optionally gzipped).</summary>
    public static byte[] ReadLabels(string path)
    {
        using FileStream stream = OpenFile(path);
        return ReadLabels(stream, path);
    }

    /// <summary>Reads IDX1 labels from a stream (optionally gzipped); <paramref name="sourceName"/> names it in errors.</summary>
    public static byte[] ReadLabels(Stream stream, string sourceName = "<stream>")
    {
        ArgumentNullException.ThrowIfNull(stream);
        using Stream input = MaybeDecompress(stream, sourceName);
        Span<byte> header = stackalloc byte[8];
        ReadExactly(input, header, sourceName, "the 8-byte labels header");
        int magic = BinaryPrimitives.ReadInt32BigEndian(header);
        if (magic != LabelsMagic)
        {
            throw new InvalidDataException(
                $"'{sourceName}' is not an IDX labels file: magic number 0x{magic:X8}, expected 0x{LabelsMagic:X8}"
                + (magic == ImagesMagic ? " (this looks like an images file)." : "."));
        }

        int count = BinaryPrimitives.ReadInt32BigEndian(header[4..]);
        if (count < 0) throw new InvalidDataException($"'{sourceName}': negative label count {count} in the header.");
        if (input.CanSeek && input.Length - input.Position != count)
        {
            throw new InvalidDataException(
                $"'{sourceName}': the header announces {count} labels, but the file has {input.Length - input.Position} bytes after the header.");
        }

        var labels = new byte[count];
        ReadExactly(input, labels, sourceName, $"{count} labels announced by the header");
        EnsureEnd(input, sourceName, count + 8L);
        return labels;
    }

    private static FileStream OpenFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"IDX file not found: '{path}'.", path);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
    }

    /// <summary>Returns a stream of the decompressed bytes when the data start with the gzip magic 1f 8b.</summary>
    private static Stream MaybeDecompress(Stream stream, string sourceName)
    {
        if (stream.CanSeek)
        {
            Span<byte> magic = stackalloc byte[2];
            long start = stream.Position;
            int read = stream.ReadAtLeast(magic, 2, throwOnEndOfStream: false);
            stream.Position = start;
            if (read == 2 && magic[0] == 0x1f && magic[1] == 0x8b)
                return new GZipReadStream(new GZipStream(stream, CompressionMode.Decompress, leaveOpen: true), sourceName);
            return new NonClosingStream(stream);
        }

        // Unseekable input: peek two bytes and stitch them back in front.
        var peek = new byte[2];
        int got = stream.ReadAtLeast(peek, 2, throwOnEndOfStream: false);
        Stream rest = new ConcatStream(peek.AsMemory(0, got), stream);
        if (got == 2 && peek[0] == 0x1f && peek[1] == 0x8b)
            return new GZipReadStream(new GZipStream(rest, CompressionMode.Decompress, leaveOpen: true), sourceName);
        return rest;
    }

    private static void ReadExactly(Stream input, Span<byte> buffer, string sourceName, string what)
    {
        int total = 0;
        try
        {
            while (total < buffer.Length)
            {
                int n = input.Read(buffer[total..]);
                if (n == 0) break;
                total += n;
            }
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{sourceName}': corrupt gzip data while reading {what}: {e.Message}", e);
        }

        if (total < buffer.Length)
            throw new InvalidDataException($"'{sourceName}' is truncated: it ends after {total} of the {buffer.Length} bytes of {what}.");
    }

    private static void EnsureEnd(Stream input, string sourceName, long expectedLength)
    {
        Span<byte> one = stackalloc byte[1];
        int n;
        try
        {
            n = input.Read(one);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{sourceName}': corrupt gzip data after the last image/label: {e.Message}", e);
        }

        if (n != 0)
            throw new InvalidDataException($"'{sourceName}' has extra bytes after the {expectedLength} bytes its header announces.");
    }

    /// <summary>Wraps GZipStream so that decompression errors carry the file name.</summary>
    private sealed class GZipReadStream(GZipStream inner, string sourceName) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            try
            {
                return inner.Read(buffer);
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDataException($"'{sourceName}' is not valid gzip data: {e.Message}", e);
            }
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>A view that does not close the caller's stream.</summary>
    private sealed class NonClosingStream(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => inner.CanSeek;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override int Read(Span<byte> buffer) => inner.Read(buffer);
        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Some already-read bytes followed by the rest of a stream (not closed on dispose).</summary>
    private sealed class ConcatStream(ReadOnlyMemory<byte> head, Stream tail) : Stream
    {
        private ReadOnlyMemory<byte> _head = head;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_head.Length > 0)
            {
                int n = Math.Min(buffer.Length, _head.Length);
                _head.Span[..n].CopyTo(buffer);
                _head = _head[n..];
                return n;
            }

            return tail.Read(buffer);
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
