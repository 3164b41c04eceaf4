using Google.Protobuf;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Onnx.Internal;

/// <summary>Reads an ONNX file and its tensors: bounded sizes, external data only from the model's folder.</summary>
internal sealed class ModelFile
{
    public ModelProto Proto { get; }
    public string Path { get; }
    private readonly string _folder;
    private readonly OnnxLoadOptions _options;
    private readonly SortedSet<string> _externalFiles = new(StringComparer.Ordinal);

    /// <summary>The external data files read so far, relative to the model's folder (with '/' separators).</summary>
    public IReadOnlyCollection<string> ExternalFiles => _externalFiles;

    private ModelFile(ModelProto proto, string path, OnnxLoadOptions options)
    {
        Proto = proto;
        Path = path;
        _folder = System.IO.Path.GetDirectoryName(path)!;
        _options = options;
    }

    public static ModelFile Read(string path, OnnxLoadOptions options)
    {
        var full = System.IO.Path.GetFullPath(path);
        var info = new FileInfo(full);
        if (!info.Exists) throw new OnnxImportException($"ONNX file '{path}' does not exist.");
        if (info.Length > options.MaxModelBytes)
            throw new OnnxImportException($"ONNX file '{path}' is {info.Length} bytes, more than the limit of {options.MaxModelBytes} (OnnxLoadOptions.MaxModelBytes). Store large weights as external data.");
        ModelProto proto;
        try
        {
            using var stream = File.OpenRead(full);
            proto = ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new OnnxImportException($"'{path}' is not a readable ONNX model (the protobuf is truncated or not protobuf at all): {ex.Message}", ex);
        }
        if (proto.Graph is null || proto.Graph.Node.Count == 0)
            throw new OnnxImportException($"'{path}' is not an ONNX model: it holds no graph (ir_version {proto.IrVersion}). Is it truncated or another file type?");
        return new ModelFile(proto, full, options);
    }

    /// <summary>The tensor's data as a CPU torch tensor (float32 for floating types, int64 for integers and bool).</summary>
    public Tensor ToTensor(TensorProto t, string what)
    {
        var dims = t.Dims.ToArray();
        long count = 1;
        foreach (var d in dims)
        {
            if (d < 0) throw new OnnxImportException($"{what}: negative dimension in [{string.Join(", ", dims)}].");
            try { count = checked(count * d); }
            catch (OverflowException) { throw new OnnxImportException($"{what}: shape [{string.Join(", ", dims)}] is too large."); }
        }
        var type = (TensorProto.Types.DataType)t.DataType;
        int size = type switch
        {
            TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Int32 or TensorProto.Types.DataType.Uint32 => 4,
            TensorProto.Types.DataType.Double or TensorProto.Types.DataType.Int64 or TensorProto.Types.DataType.Uint64 => 8,
            TensorProto.Types.DataType.Float16 or TensorProto.Types.DataType.Int16 or TensorProto.Types.DataType.Uint16 => 2,
            TensorProto.Types.DataType.Int8 or TensorProto.Types.DataType.Uint8 or TensorProto.Types.DataType.Bool => 1,
            _ => throw new OnnxImportException($"{what}: element type {type} is not supported (float, double, float16, integer and bool tensors are)."),
        };
        if (count * size > _options.MaxTensorBytes)
            throw new OnnxImportException($"{what}: {count * size} bytes, more than the limit of {_options.MaxTensorBytes} (OnnxLoadOptions.MaxTensorBytes).");

        byte[]? raw = null;
        if (t.DataLocation == TensorProto.Types.DataLocation.External) raw = ReadExternal(t, what, count * size);
        else if (!t.RawData.IsEmpty) raw = t.RawData.ToByteArray();
        if (raw is not null && raw.LongLength != count * size)
            throw new OnnxImportException($"{what}: {raw.LongLength} bytes of data for shape [{string.Join(", ", dims)}] of {type}, expected {count * size}.");

        bool isFloat = type is TensorProto.Types.DataType.Float or TensorProto.Types.DataType.Double or TensorProto.Types.DataType.Float16;
        if (raw is not null)
        {
            var asFloat = isFloat ? RawToFloat(raw, type) : null;
            var asLong = isFloat ? null : RawToLong(raw, type);
            return isFloat ? torch.tensor(asFloat!, dims) : torch.tensor(asLong!, dims);
        }
        // Typed fields (tensors written without raw_data).
        long got;
        Tensor result;
        switch (type)
        {
            case TensorProto.Types.DataType.Float:
                got = t.FloatData.Count; result = torch.tensor(t.FloatData.ToArray(), dims.Length == 0 && got == 1 ? dims : dims); break;
            case TensorProto.Types.DataType.Double:
                got = t.DoubleData.Count; result = torch.tensor(t.DoubleData.Select(v => (float)v).ToArray(), dims); break;
            case TensorProto.Types.DataType.Float16:
                got = t.Int32Data.Count; result = torch.tensor(t.Int32Data.Select(v => (float)BitConverter.UInt16BitsToHalf((ushort)v)).ToArray(), dims); break;
            case TensorProto.Types.DataType.Int64:
                got = t.Int64Data.Count; result = torch.tensor(t.Int64Data.ToArray(), dims); break;
            case TensorProto.Types.DataType.Uint64 or TensorProto.Types.DataType.Uint32:
                got = t.Uint64Data.Count; result = torch.tensor(t.Uint64Data.Select(v => (long)v).ToArray(), dims); break;
            default:
                got = t.Int32Data.Count; result = torch.tensor(t.Int32Data.Select(v => (long)v).ToArray(), dims); break;
        }
        if (got != count)
        {
            result.Dispose();
            throw new OnnxImportException($"{what}: {got} values for shape [{string.Join(", ", dims)}], expected {count}.");
        }
        return result;
    }

    private byte[] ReadExternal(TensorProto t, string what, long expectedBytes)
    {
        var entries = t.ExternalData.ToDictionary(e => e.Key, e => e.Value);
        if (!entries.TryGetValue("location", out var location) || string.IsNullOrEmpty(location))
            throw new OnnxImportException($"{what}: external data without a location.");
        if (System.IO.Path.IsPathRooted(location))
            throw new OnnxImportException($"{what}: external data location '{location}' is an absolute path; only files in the model's folder '{_folder}' are read.");
        var file = System.IO.Path.GetFullPath(System.IO.Path.Combine(_folder, location));
        var root = _folder.EndsWith(System.IO.Path.DirectorySeparatorChar) ? _folder : _folder + System.IO.Path.DirectorySeparatorChar;
        if (!file.StartsWith(root, StringComparison.Ordinal))
            throw new OnnxImportException($"{what}: external data location '{location}' points outside the model's folder '{_folder}'; refusing to read it.");
        var info = new FileInfo(file);
        if (!info.Exists) throw new OnnxImportException($"{what}: external data file '{location}' not found next to the model.");
        if (info.LinkTarget is not null)
            throw new OnnxImportException($"{what}: external data file '{location}' is a symbolic link; only regular files in the model's folder are read.");
        _externalFiles.Add(System.IO.Path.GetRelativePath(_folder, file).Replace(System.IO.Path.DirectorySeparatorChar, '/'));
        long offset = entries.TryGetValue("offset", out var o) && long.TryParse(o, out var ov) ? ov : 0;
        long length = entries.TryGetValue("length", out var l) && long.TryParse(l, out var lv) ? lv : expectedBytes;
        if (offset < 0 || length != expectedBytes || offset > info.Length - length)
            throw new OnnxImportException($"{what}: external data block (offset {offset}, length {length}) does not fit '{location}' ({info.Length} bytes) or the tensor ({expectedBytes} bytes).");
        var buffer = new byte[length];
        using var stream = File.OpenRead(file);
        stream.Seek(offset, SeekOrigin.Begin);
        stream.ReadExactly(buffer);
        return buffer;
    }

    private static float[] RawToFloat(byte[] raw, TensorProto.Types.DataType type) => type switch
    {
        TensorProto.Types.DataType.Float => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(raw).ToArray(),
        TensorProto.Types.DataType.Double => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(raw).ToArray().Select(v => (float)v).ToArray(),
        _ => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(raw).ToArray().Select(v => (float)v).ToArray(),
    };

    private static long[] RawToLong(byte[] raw, TensorProto.Types.DataType type) => type switch
    {
        TensorProto.Types.DataType.Int64 or TensorProto.Types.DataType.Uint64 => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(raw).ToArray(),
        TensorProto.Types.DataType.Int32 => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(raw).ToArray().Select(v => (long)v).ToArray(),
        TensorProto.Types.DataType.Uint32 => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(raw).ToArray().Select(v => (long)v).ToArray(),
        TensorProto.Types.DataType.Int16 => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, short>(raw).ToArray().Select(v => (long)v).ToArray(),
        TensorProto.Types.DataType.Uint16 => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(raw).ToArray().Select(v => (long)v).ToArray(),
        TensorProto.Types.DataType.Int8 => raw.Select(v => (long)(sbyte)v).ToArray(),
        _ => raw.Select(v => (long)v).ToArray(),
    };
}
