using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace Ebp.Weights;

/// <summary>
/// A parsed and fully validated safetensors header: every tensor's dtype, shape and byte range is checked
/// against the file size before a single tensor is allocated.
/// </summary>
internal sealed class SafetensorsHeader
{
    /// <summary>safetensors caps the header at 100 MB.</summary>
    private const long MaxHeaderBytes = 100L * 1024 * 1024;

    internal sealed record Entry(string Name, ScalarType DType, long[] Shape, long Begin, long End);

    public IReadOnlyList<Entry> Entries { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <summary>Absolute file offset of the first data byte.</summary>
    public long DataStart { get; }

    private SafetensorsHeader(IReadOnlyList<Entry> entries, IReadOnlyDictionary<string, string> metadata, long dataStart)
    {
        Entries = entries;
        Metadata = metadata;
        DataStart = dataStart;
    }

    internal static readonly IReadOnlyDictionary<string, (ScalarType Type, int Size)> DTypes =
        new Dictionary<string, (ScalarType, int)>(StringComparer.Ordinal)
        {
            ["F64"] = (ScalarType.Float64, 8),
            ["F32"] = (ScalarType.Float32, 4),
            ["F16"] = (ScalarType.Float16, 2),
            ["BF16"] = (ScalarType.BFloat16, 2),
            ["I64"] = (ScalarType.Int64, 8),
            ["I32"] = (ScalarType.Int32, 4),
            ["I16"] = (ScalarType.Int16, 2),
            ["I8"] = (ScalarType.Int8, 1),
            ["U8"] = (ScalarType.Byte, 1),
            ["BOOL"] = (ScalarType.Bool, 1),
        };

    /// <summary>Reads and validates the header of <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">The header is malformed or inconsistent with the file size (the message names the file).</exception>
    public static SafetensorsHeader Read(string path)
    {
        using var stream = File.OpenRead(path);
        long fileLength = stream.Length;
        string Fail(string what) => $"'{path}' is not a valid safetensors file: {what}";

        if (fileLength < 8)
            throw new InvalidDataException(Fail($"the file has only {fileLength} bytes, fewer than the 8-byte header length."));
        Span<byte> lenBytes = stackalloc byte[8];
        stream.ReadExactly(lenBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLength > (ulong)(fileLength - 8))
            throw new InvalidDataException(Fail(
                $"the header length ({headerLength} bytes) runs past the end of the file ({fileLength} bytes); the file is truncated or not safetensors."));
        if ((long)headerLength > MaxHeaderBytes)
            throw new InvalidDataException(Fail($"the header length ({headerLength} bytes) exceeds the 100 MB limit."));
        if (headerLength < 2)
            throw new InvalidDataException(Fail($"the header length ({headerLength} bytes) is too small to hold a JSON object."));

        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;

        string json;
        try
        {
            json = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(headerBytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new InvalidDataException(Fail($"the header is not valid UTF-8 ({e.Message})."), e);
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException(Fail($"the header is not valid JSON ({e.Message})."), e);
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException(Fail($"the header must be a JSON object (got {root.ValueKind})."));

            var entries = new List<Entry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prop in root.EnumerateObject())
            {
                if (!seen.Add(prop.Name))
                    throw new InvalidDataException(Fail($"the header lists \"{prop.Name}\" twice."));
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object)
                        throw new InvalidDataException(Fail("\"__metadata__\" must be a JSON object."));
                    foreach (var m in prop.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    continue;
                }
                entries.Add(ParseEntry(prop, dataLength, Fail));
            }
            CheckLayout(entries, dataLength, Fail);
            return new SafetensorsHeader(entries, metadata, dataStart);
        }
    }

    /// <summary>
    /// The format requires the tensors to tile the data section exactly: in order of their offsets, each starts
    /// where the previous one ends, the first at 0 and the last at the end of the file. Overlapping ranges would
    /// let a small file stand for many times its size in tensors.
    /// </summary>
    private static void CheckLayout(List<Entry> entries, long dataLength, Func<string, string> fail)
    {
        var ordered = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        long expected = 0;
        Entry? previous = null;
        foreach (var e in ordered)
        {
            if (e.Begin < expected)
                throw new InvalidDataException(fail(
                    $"the data of tensors \"{previous!.Name}\" [{previous.Begin}, {previous.End}) and \"{e.Name}\" [{e.Begin}, {e.End}) overlap; " +
                    "each tensor must have its own bytes."));
            if (e.Begin > expected)
                throw new InvalidDataException(fail(
                    $"bytes {expected}..{e.Begin} of the data section belong to no tensor (before \"{e.Name}\"); the data must be contiguous."));
            expected = e.End;
            previous = e;
        }
        if (expected != dataLength)
            throw new InvalidDataException(fail(
                $"the tensors cover {expected} bytes, but the data section has {dataLength}; the last {dataLength - expected} bytes belong to no tensor."));
    }

    private static Entry ParseEntry(JsonProperty prop, long dataLength, Func<string, string> fail)
    {
        string name = prop.Name;
        var v = prop.Value;
        if (v.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException(fail($"the entry for tensor \"{name}\" must be a JSON object."));

        if (!v.TryGetProperty("dtype", out var dtypeJson) || dtypeJson.ValueKind != JsonValueKind.String)
            throw new InvalidDataException(fail($"tensor \"{name}\" has no string \"dtype\"."));
        string dtypeName = dtypeJson.GetString()!;
        if (!DTypes.TryGetValue(dtypeName, out var dt))
            throw new InvalidDataException(fail(
                $"tensor \"{name}\" has unsupported dtype \"{dtypeName}\" (supported: {string.Join(", ", DTypes.Keys)})."));

        if (!v.TryGetProperty("shape", out var shapeJson) || shapeJson.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException(fail($"tensor \"{name}\" has no \"shape\" list."));
        var shape = new long[shapeJson.GetArrayLength()];
        int i = 0;
        long numel = 1;
        foreach (var d in shapeJson.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
                throw new InvalidDataException(fail($"tensor \"{name}\" has an invalid shape entry {d.GetRawText()}."));
            shape[i++] = dim;
            try { numel = checked(numel * dim); }
            catch (OverflowException) { throw new InvalidDataException(fail($"tensor \"{name}\" has an absurdly large shape.")); }
        }

        if (!v.TryGetProperty("data_offsets", out var offJson) || offJson.ValueKind != JsonValueKind.Array || offJson.GetArrayLength() != 2)
            throw new InvalidDataException(fail($"tensor \"{name}\" has no \"data_offsets\" [begin, end] pair."));
        var offs = offJson.EnumerateArray().ToArray();
        if (!offs[0].TryGetInt64(out long begin) || !offs[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw new InvalidDataException(fail($"tensor \"{name}\" has invalid data_offsets {offJson.GetRawText()}."));

        long expectedBytes;
        try { expectedBytes = checked(numel * dt.Size); }
        catch (OverflowException) { throw new InvalidDataException(fail($"tensor \"{name}\" has an absurdly large shape.")); }
        if (end - begin != expectedBytes)
            throw new InvalidDataException(fail(
                $"tensor \"{name}\" ({dtypeName} [{string.Join(", ", shape)}]) needs {expectedBytes} bytes but data_offsets [{begin}, {end}] span {end - begin}."));
        if (end > dataLength)
            throw new InvalidDataException(fail(
                $"the data of tensor \"{name}\" (bytes {begin}..{end} of the data section) runs past the end of the file (the data section has only {dataLength} bytes); the file is truncated."));
        return new Entry(name, dt.Type, shape, begin, end);
    }
}
