using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Weights;

/// <summary>
/// Writes the bad-weight-file corpus of issue 14 with the .NET standard library only (System.IO.Compression and a
/// protocol-2 pickle writer that emits the opcodes <c>torch.save</c> uses), so the suite needs no Python and the
/// files are rebuilt on every run. Each file is small on disk but, read naively, stands for far more memory than
/// the model it is loaded into.
/// </summary>
public static class HostileWeightFiles
{
    /// <summary>One corpus file: its name and a fragment the loader's error message must contain.</summary>
    public sealed record Case(string Name, string Expected);

    /// <summary>The model every file is loaded into (a small VGG with batch norm).</summary>
    public const string ModelSpecJson = """{"kind":"vgg","cfg":[8,"M",16,"M",32,32,"M"],"batch_norm":true,"in_channels":3,"hidden":64,"num_classes":10,"pool_size":[2,2]}""";

    private const long MiB = 1 << 20;

    /// <summary>Writes every case into <paramref name="folder"/> and returns them.</summary>
    /// <param name="folder">Target folder (created if needed).</param>
    /// <param name="model">The model built from <see cref="ModelSpecJson"/>; the files use its key names.</param>
    public static IReadOnlyList<Case> Write(string folder, nn.Module model)
    {
        Directory.CreateDirectory(folder);
        var state = model.state_dict().Select(kv => (kv.Key, Shape: kv.Value.shape, kv.Value.dtype)).ToList();
        var cases = new List<Case>();
        void Add(string name, string expected, Action<string> write)
        {
            write(Path.Combine(folder, name));
            cases.Add(new Case(name, expected));
        }

        // safetensors: 200 tensors of 4 MiB, all on the same 4 MiB of data.
        Add("overlap-200.safetensors", "overlap", p => WriteSafetensors(p, 4 * MiB,
            Enumerable.Range(0, 200).Select(i => ($"t{i}", "F32", new long[] { 1024, 1024 }, 0L, 4 * MiB))));

        // safetensors: the model's own keys, two of which share bytes (it loaded before, giving both the same values).
        Add("shared-bytes.safetensors", "overlap", p =>
        {
            long offset = 0;
            var entries = new List<(string, string, long[], long, long)>();
            foreach (var (key, shape, dtype) in state)
            {
                long bytes = shape.Aggregate(1L, (a, b) => a * b) * (dtype == ScalarType.Int64 ? 8 : 4);
                entries.Add((key, dtype == ScalarType.Int64 ? "I64" : "F32", shape, offset, offset + bytes));
                offset += bytes;
            }
            // features.1.running_mean and running_var are both 8 floats: point the second at the first's bytes.
            int i = entries.FindIndex(e => e.Item1 == "features.1.running_var");
            int j = entries.FindIndex(e => e.Item1 == "features.1.running_mean");
            entries[i] = (entries[i].Item1, entries[i].Item2, entries[i].Item3, entries[j].Item4, entries[j].Item5);
            WriteSafetensors(p, offset, entries);
        });

        // safetensors: a gap of unused bytes between two tensors.
        Add("gap.safetensors", "belong to no tensor", p => WriteSafetensors(p, 3 * 4,
            new[] { ("a", "F32", new long[] { 1 }, 0L, 4L), ("b", "F32", new long[] { 1 }, 8L, 12L) }));

        // .pth: 200 model-unrelated tensors, each a 4 MiB view of the one 4 MiB storage (PyBridge read it 200 times).
        Add("shared-storage-200.pth", "Unexpected keys", p => WritePth(p,
            Enumerable.Range(0, 200).Select(i => new PthTensor($"t{i}", "0", "FloatStorage", 1024 * 1024, 0, new long[] { 1024, 1024 })).ToList(),
            new Dictionary<string, long> { ["0"] = 4 * MiB }));

        // .pth: the model's keys, but the storage of the classifier weight declares 512 MiB (deflated zeros, ~0.5 MB on disk).
        Add("inflating-storage.pth", "views of storages", p =>
        {
            var tensors = new List<PthTensor>();
            var sizes = new Dictionary<string, long>();
            foreach (var (key, shape, dtype) in state)
            {
                string k = tensors.Count.ToString();
                long numel = shape.Aggregate(1L, (a, b) => a * b);
                long storageNumel = key == "classifier.0.weight" ? 128 * MiB : numel;
                string type = dtype == ScalarType.Int64 ? "LongStorage" : "FloatStorage";
                tensors.Add(new PthTensor(key, k, type, storageNumel, 0, shape));
                sizes[k] = storageNumel * (dtype == ScalarType.Int64 ? 8 : 4);
            }
            WritePth(p, tensors, sizes, deflate: true);
        });

        // .pth: a storage whose pickle declares 256M floats (1 GiB) backed by a 4-byte entry.
        Add("declared-numel.pth", "should hold", p => WritePth(p,
            new List<PthTensor> { new("features.0.bias", "0", "FloatStorage", 256 * MiB, 0, new long[] { 8 }) },
            new Dictionary<string, long> { ["0"] = 4 }));

        // .pth: a tensor of shape [16384, 16384] (1 GiB) on a 32-byte storage.
        Add("shape-past-storage.pth", "reaches element", p => WritePth(p,
            new List<PthTensor> { new("features.0.bias", "0", "FloatStorage", 8, 0, new long[] { 16384, 16384 }) },
            new Dictionary<string, long> { ["0"] = 32 }));

        // .pth: data.pkl inflating to 64 MiB of opcodes from ~64 KB on disk.
        Add("pickle-bomb.pth", "data.pkl declares", p => WriteZip(p, new[] { ("archive/data.pkl", (Func<Stream, long>)(s => WriteZeros(s, 64 * MiB)), true) }));

        // .pth of a few hundred bytes: a pickle string declaring 2^31 - 1 bytes (was a raw OutOfMemoryException:
        // "Array dimensions exceeded supported range").
        Add("huge-string.pth", "are left", p =>
        {
            var pkl = new byte[] { 0x80, 2, (byte)'X', 0xff, 0xff, 0xff, 0x7f, (byte)'.' };
            WriteZip(p, new[] { ("archive/data.pkl", (Func<Stream, long>)(s => { s.Write(pkl); return pkl.Length; }), false) });
        });

        // .pth: a pickle that calls os.system (must be refused, never run).
        Add("os-system.pth", "os.system", p =>
        {
            var w = new PickleWriter();
            w.Global("os", "system").Str("echo pwned > " + Path.Combine(folder, "pwned")).Tuple1().Reduce().Stop();
            var pkl = w.ToArray();
            WriteZip(p, new[] { ("archive/data.pkl", (Func<Stream, long>)(s => { s.Write(pkl); return pkl.Length; }), false) });
        });

        return cases;
    }

    /// <summary>A tensor of a .pth file: a C-contiguous view at <paramref name="Offset"/> into storage <paramref name="Key"/> of <paramref name="Numel"/> elements.</summary>
    public sealed record PthTensor(string Name, string Key, string StorageType, long Numel, long Offset, long[] Shape);

    /// <summary>Writes a safetensors file with the given header entries and <paramref name="dataBytes"/> zero bytes of data.</summary>
    public static void WriteSafetensors(string path, long dataBytes, IEnumerable<(string Name, string DType, long[] Shape, long Begin, long End)> entries)
    {
        var sb = new StringBuilder("{");
        foreach (var (name, dtype, shape, begin, end) in entries)
            sb.Append($"\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{string.Join(",", shape)}],\"data_offsets\":[{begin},{end}]}},");
        sb[^1] = '}';
        var header = Encoding.UTF8.GetBytes(sb.ToString());
        using var f = File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
        f.Write(len);
        f.Write(header);
        f.SetLength(f.Position + dataBytes);
    }

    /// <summary>
    /// Writes a .pth in <c>torch.save</c>'s layout: <c>archive/data.pkl</c> (an OrderedDict of
    /// <c>_rebuild_tensor_v2</c> calls), <c>archive/data/KEY</c> of the given byte sizes (zeros, or the bytes
    /// of <paramref name="data"/>), <c>archive/version</c>.
    /// </summary>
    public static void WritePth(string path, IReadOnlyList<PthTensor> tensors, IReadOnlyDictionary<string, long> storageBytes,
        bool deflate = false, IReadOnlyDictionary<string, byte[]>? data = null)
    {
        var w = new PickleWriter();
        w.Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark();
        foreach (var t in tensors)
        {
            w.Str(t.Name).Global("torch._utils", "_rebuild_tensor_v2").Mark();
            w.Mark().Str("storage").Global("torch", t.StorageType).Str(t.Key).Str("cpu").Int(t.Numel).Tuple().BinPersId();
            w.Int(t.Offset).Mark();
            foreach (var d in t.Shape) w.Int(d);
            w.Tuple().Mark();
            long stride = 1;
            var strides = new long[t.Shape.Length];
            for (int i = t.Shape.Length - 1; i >= 0; i--) { strides[i] = stride; stride *= t.Shape[i]; }
            foreach (var s in strides) w.Int(s);
            w.Tuple().False().Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce();
        }
        w.SetItems();
        // torch.save's state dicts carry _metadata (module versions) set with BUILD.
        w.EmptyDict().Str("_metadata").EmptyDict().Str("").EmptyDict().Str("version").Int(1).SetItem().SetItem().SetItem().Build().Stop();
        var pkl = w.ToArray();

        var entries = new List<(string, Func<Stream, long>, bool)>
        {
            ("archive/data.pkl", s => { s.Write(pkl); return pkl.Length; }, false),
        };
        foreach (var (key, bytes) in storageBytes)
            entries.Add(($"archive/data/{key}", s =>
            {
                if (data is not null && data.TryGetValue(key, out var b)) { s.Write(b); return b.Length; }
                return WriteZeros(s, bytes);
            }, deflate));
        entries.Add(("archive/version", s => { s.Write("3\n"u8); return 2; }, false));
        WriteZip(path, entries);
    }

    private static void WriteZip(string path, IEnumerable<(string Name, Func<Stream, long> Write, bool Deflate)> entries)
    {
        using var f = File.Create(path);
        using var zip = new ZipArchive(f, ZipArchiveMode.Create);
        foreach (var (name, write, deflate) in entries)
        {
            var e = zip.CreateEntry(name, deflate ? CompressionLevel.SmallestSize : CompressionLevel.NoCompression);
            using var s = e.Open();
            write(s);
        }
    }

    private static long WriteZeros(Stream s, long bytes)
    {
        var chunk = new byte[1 << 20];
        for (long left = bytes; left > 0; left -= chunk.Length)
            s.Write(chunk, 0, (int)Math.Min(chunk.Length, left));
        return bytes;
    }

    /// <summary>Pickle protocol 2, the opcodes torch.save emits.</summary>
    public sealed class PickleWriter
    {
        private readonly MemoryStream _s = new();

        public PickleWriter() { _s.WriteByte(0x80); _s.WriteByte(2); }

        private PickleWriter Op(byte b) { _s.WriteByte(b); return this; }
        public PickleWriter Mark() => Op((byte)'(');
        public PickleWriter Tuple() => Op((byte)'t');
        public PickleWriter Tuple1() => Op(0x85);
        public PickleWriter EmptyTuple() => Op((byte)')');
        public PickleWriter EmptyDict() => Op((byte)'}');
        public PickleWriter Reduce() => Op((byte)'R');
        public PickleWriter Build() => Op((byte)'b');
        public PickleWriter SetItem() => Op((byte)'s');
        public PickleWriter SetItems() => Op((byte)'u');
        public PickleWriter BinPersId() => Op((byte)'Q');
        public PickleWriter False() => Op(0x89);
        public PickleWriter Stop() => Op((byte)'.');

        public PickleWriter Global(string module, string name)
        {
            _s.WriteByte((byte)'c');
            _s.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
            return this;
        }

        public PickleWriter Str(string v)
        {
            var b = Encoding.UTF8.GetBytes(v);
            _s.WriteByte((byte)'X');
            Span<byte> n = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(n, (uint)b.Length);
            _s.Write(n);
            _s.Write(b);
            return this;
        }

        public PickleWriter Int(long v)
        {
            if (v is >= 0 and < 256) { _s.WriteByte((byte)'K'); _s.WriteByte((byte)v); }
            else if (v is >= int.MinValue and <= int.MaxValue)
            {
                _s.WriteByte((byte)'J');
                Span<byte> n = stackalloc byte[4];
                BinaryPrimitives.WriteInt32LittleEndian(n, (int)v);
                _s.Write(n);
            }
            else
            {
                _s.WriteByte(0x8a); _s.WriteByte(8);
                Span<byte> n = stackalloc byte[8];
                BinaryPrimitives.WriteInt64LittleEndian(n, v);
                _s.Write(n);
            }
            return this;
        }

        public byte[] ToArray() => _s.ToArray();
    }
}
