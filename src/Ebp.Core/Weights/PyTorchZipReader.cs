using System.IO.Compression;
using static TorchSharp.torch;

namespace Ebp.Weights;

/// <summary>
/// Reads a <c>torch.save</c> zip archive in bounded memory. The zip's central directory, the pickle
/// (<see cref="StateDictPickle"/>) and every storage's declared size are checked before any tensor data is
/// inflated; only the storages of the tensors asked for are read, each once, and no entry may inflate to more
/// than its declared size.
/// </summary>
internal sealed class PyTorchZipReader : IDisposable
{
    /// <summary>Upper bound on <c>data.pkl</c> when nothing is known about the model (a state dict of 100k
    /// tensors pickles to a few MB).</summary>
    internal const long MaxPickleBytes = 16L * 1024 * 1024;

    private const int MaxEntries = 1_000_000;

    private readonly string _path;
    private readonly FileStream _stream;
    private readonly ZipArchive _archive;
    private readonly Dictionary<string, ZipArchiveEntry> _data = new(StringComparer.Ordinal);

    /// <summary>The state dict's tensors as the pickle declares them (nothing read yet).</summary>
    public IReadOnlyList<StateDictPickle.TensorRef> Tensors { get; }

    private PyTorchZipReader(string path, long maxPickleBytes)
    {
        _path = path;
        _stream = File.OpenRead(path);
        try
        {
            _archive = new ZipArchive(_stream, ZipArchiveMode.Read, leaveOpen: true);
            if (_archive.Entries.Count > MaxEntries)
                throw Fail($"the archive lists {_archive.Entries.Count} entries.");

            ZipArchiveEntry? pickle = null;
            foreach (var e in _archive.Entries)
            {
                // torch.save writes "<archive>/data.pkl", "<archive>/data/<key>", "<archive>/version", ...
                int slash = e.FullName.IndexOf('/');
                string inner = slash < 0 ? e.FullName : e.FullName[(slash + 1)..];
                if (inner == "data.pkl")
                {
                    if (pickle is not null) throw Fail("the archive holds more than one data.pkl.");
                    pickle = e;
                }
                else if (inner.StartsWith("data/", StringComparison.Ordinal) && !_data.TryAdd(inner[5..], e))
                    throw Fail($"the archive holds storage '{inner[5..]}' twice.");
            }
            if (pickle is null)
                throw Fail("the archive has no data.pkl; it is a zip file, but not one written by torch.save.");
            if (pickle.Length > maxPickleBytes)
                throw Fail($"its data.pkl declares {pickle.Length} bytes; at most {maxPickleBytes} are expected for this model.");

            var bytes = new byte[pickle.Length];
            using (var s = pickle.Open())
                ReadExactly(s, bytes, pickle.FullName);
            try
            {
                Tensors = StateDictPickle.Parse(bytes);
            }
            catch (FormatException e)
            {
                throw new InvalidDataException($"'{path}' is not a loadable PyTorch state_dict: {e.Message}", e);
            }
            foreach (var t in Tensors) CheckView(t);
        }
        catch (Exception e) when (!e.Message.StartsWith($"'{path}'", StringComparison.Ordinal))
        {
            Dispose();
            throw new InvalidDataException($"'{path}' could not be read as a PyTorch zip archive: {e.Message}", e);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Opens <paramref name="path"/> and parses its pickle, bounded by <paramref name="maxPickleBytes"/>.</summary>
    /// <exception cref="InvalidDataException">The archive is malformed, not a state_dict, or inconsistent (names the file).</exception>
    public static PyTorchZipReader Open(string path, long maxPickleBytes = MaxPickleBytes) => new(path, maxPickleBytes);

    private InvalidDataException Fail(string what) => new($"'{_path}' is not a valid PyTorch (torch.save) file: {what}");

    /// <summary>Every tensor must be a view inside its storage, and the storage's entry must hold exactly its bytes.</summary>
    private void CheckView(StateDictPickle.TensorRef t)
    {
        var s = t.Storage;
        if (!_data.TryGetValue(s.Key, out var entry))
            throw Fail($"tensor \"{t.Name}\" uses storage '{s.Key}', which the archive does not hold.");
        long bytes;
        try { bytes = checked(s.Numel * s.ElementSize); }
        catch (OverflowException) { throw Fail($"storage '{s.Key}' declares an absurd size."); }
        if (entry.Length != bytes)
            throw Fail($"storage '{s.Key}' ({s.Numel} × {s.ElementSize} bytes) should hold {bytes} bytes, but its entry declares {entry.Length}.");
        long numel = 1, last = t.Offset;
        try
        {
            for (int i = 0; i < t.Shape.Length; i++)
            {
                numel = checked(numel * t.Shape[i]);
                if (t.Shape[i] > 0) last = checked(last + (t.Shape[i] - 1) * t.Stride[i]);
            }
        }
        catch (OverflowException) { throw Fail($"tensor \"{t.Name}\" has an absurd shape or stride."); }
        if (t.Shape.Length != t.Stride.Length)
            throw Fail($"tensor \"{t.Name}\" has {t.Shape.Length} sizes but {t.Stride.Length} strides.");
        if (numel > 0 && last >= s.Numel)
            throw Fail($"tensor \"{t.Name}\" [{string.Join(", ", t.Shape)}] reaches element {last} of storage '{s.Key}', which has {s.Numel}.");
    }

    /// <summary>Bytes of the distinct storages behind <paramref name="tensors"/>.</summary>
    public static long StorageBytes(IEnumerable<StateDictPickle.TensorRef> tensors) =>
        tensors.Select(t => t.Storage).Distinct().Sum(s => s.Numel * s.ElementSize);

    /// <summary>Reads <paramref name="tensors"/> (a subset of <see cref="Tensors"/>), each storage once.</summary>
    /// <returns>Name → CPU tensor; the caller owns them.</returns>
    public TensorDictionary Read(IEnumerable<StateDictPickle.TensorRef> tensors)
    {
        var wanted = tensors.ToList();
        var uses = wanted.GroupBy(t => t.Storage.Key).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var storages = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var result = new TensorDictionary();
        try
        {
            foreach (var t in wanted)
            {
                var s = t.Storage;
                if (!storages.TryGetValue(s.Key, out var storage))
                {
                    storage = empty(s.Numel, dtype: s.DType);
                    storages[s.Key] = storage;
                    if (s.Numel > 0)
                    {
                        var entry = _data[s.Key];
                        using var stream = new BoundedStream(entry.Open(), entry.Length);
                        storage.ReadBytesFromStream(stream);
                        if (stream.Position != entry.Length)
                            throw Fail($"storage '{s.Key}' holds fewer bytes than its declared {entry.Length}.");
                        if (stream.ReadByte() >= 0)
                            throw Fail($"storage '{s.Key}' inflates to more than its declared {entry.Length} bytes.");
                    }
                }
                long numel = t.Shape.Aggregate(1L, (a, b) => a * b);
                bool whole = --uses[s.Key] == 0 && t.Offset == 0 && numel == s.Numel && IsContiguous(t.Shape, t.Stride);
                Tensor value;
                if (whole)
                {
                    // The last user of a storage that covers it exactly takes it without a copy.
                    value = storage.view(t.Shape);
                }
                else
                {
                    using var view = storage.as_strided(t.Shape, t.Stride, t.Offset);
                    value = view.clone();
                }
                result[t.Name] = value;
                if (uses[s.Key] == 0)
                {
                    storages.Remove(s.Key);
                    storage.Dispose();
                }
            }
        }
        catch (Exception e)
        {
            result.Dispose();
            if (e is InvalidDataException) throw;
            throw new InvalidDataException($"'{_path}': the tensor data could not be read: {e.Message}", e);
        }
        finally
        {
            foreach (var s in storages.Values) s.Dispose();
        }
        return result;
    }

    private static bool IsContiguous(long[] shape, long[] stride)
    {
        long expected = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            if (shape[i] != 1 && stride[i] != expected) return false;
            expected *= shape[i];
        }
        return true;
    }

    private void ReadExactly(Stream s, byte[] buffer, string name)
    {
        int n = 0;
        while (n < buffer.Length)
        {
            int r = s.Read(buffer, n, buffer.Length - n);
            if (r == 0) throw Fail($"entry '{name}' is shorter than its declared {buffer.Length} bytes.");
            n += r;
        }
        if (s.ReadByte() >= 0) throw Fail($"entry '{name}' inflates to more than its declared {buffer.Length} bytes.");
    }

    public void Dispose()
    {
        _archive?.Dispose();
        _stream.Dispose();
    }

    /// <summary>Reads at most <c>length</c> bytes of the inner stream, then one byte more to detect overlong entries.</summary>
    private sealed class BoundedStream(Stream inner, long length) : Stream
    {
        private readonly long _length = length;
        private long _left = length;
        private bool _probed;

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_left == 0)
            {
                // One extra byte is allowed through so the caller can tell an entry longer than declared.
                if (_probed || buffer.Length == 0) return 0;
                _probed = true;
                return inner.Read(buffer[..1]);
            }
            // Fill the buffer as far as the entry goes: inflating streams return short reads, and a caller that
            // reads once (TorchSharp's ReadBytesFromStream) must not see a short read as the end.
            var target = buffer[..(int)Math.Min(buffer.Length, _left)];
            int n = 0;
            while (n < target.Length)
            {
                int r = inner.Read(target[n..]);
                if (r == 0) break;
                n += r;
            }
            _left -= n;
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => _length;
        public override long Position { get => _length - _left; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
