using System.Text;
using static TorchSharp.torch;

namespace Ebp.Weights;

/// <summary>
/// Reads TorchSharp's own <c>module.save</c> format into a dictionary, validating every length against the
/// file size before allocating. Layout: LEB128 entry count, then per entry a .NET <c>BinaryWriter</c> string
/// (the key), LEB128 dtype, LEB128 rank, LEB128 dims, raw little-endian bytes.
/// </summary>
internal static class TorchSharpFormatReader
{
    private static readonly IReadOnlyDictionary<ScalarType, int> ElementSizes = new Dictionary<ScalarType, int>
    {
        [ScalarType.Byte] = 1, [ScalarType.Int8] = 1, [ScalarType.Int16] = 2, [ScalarType.Int32] = 4,
        [ScalarType.Int64] = 8, [ScalarType.Float16] = 2, [ScalarType.Float32] = 4, [ScalarType.Float64] = 8,
        [ScalarType.ComplexFloat32] = 8, [ScalarType.ComplexFloat64] = 16, [ScalarType.Bool] = 1,
        [ScalarType.BFloat16] = 2,
    };

    public static TensorDictionary Read(string path)
    {
        using var stream = File.OpenRead(path);
        using var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        long length = stream.Length;
        string Fail(string what) =>
            $"'{path}' is not a valid weight file. It is neither safetensors nor a PyTorch zip archive, and reading it as TorchSharp's module.save format failed: {what}";

        var result = new TensorDictionary();
        try
        {
            long count = Leb128(reader);
            if (count < 0 || count > length)
                throw new InvalidDataException(Fail($"implausible entry count {count} for a {length}-byte file."));
            for (long i = 0; i < count; i++)
            {
                string key = reader.ReadString();
                long typeCode = Leb128(reader);
                var dtype = (ScalarType)typeCode;
                if (typeCode > sbyte.MaxValue || !ElementSizes.TryGetValue(dtype, out int elementSize))
                    throw new InvalidDataException(Fail($"entry {i} (\"{key}\") has unknown element type code {typeCode}."));
                long rank = Leb128(reader);
                if (rank > 64)
                    throw new InvalidDataException(Fail($"entry {i} (\"{key}\") has implausible rank {rank}."));
                var shape = new long[rank];
                long numel = 1;
                for (int d = 0; d < rank; d++)
                {
                    shape[d] = Leb128(reader);
                    numel = checked(numel * shape[d]);
                }
                long bytes = checked(numel * elementSize);
                long remaining = length - stream.Position;
                if (bytes > remaining)
                    throw new InvalidDataException(Fail(
                        $"entry {i} (\"{key}\", {dtype} [{string.Join(", ", shape)}]) needs {bytes} bytes but only {remaining} remain; the file is truncated."));
                if (result.ContainsKey(key))
                    throw new InvalidDataException(Fail($"the key \"{key}\" appears twice."));
                var t = empty(shape, dtype: dtype);
                result.Add(key, t);
                if (bytes > 0)
                    t.ReadBytesFromStream(stream);
            }
            if (stream.Position != length)
                throw new InvalidDataException(Fail($"{length - stream.Position} unexpected trailing bytes after {count} entries."));
            return result;
        }
        catch (Exception e) when (e is EndOfStreamException or OverflowException or FormatException or IOException and not FileNotFoundException)
        {
            result.Dispose();
            throw new InvalidDataException(Fail($"{e.GetType().Name}: {e.Message} (the file is truncated or in an unknown format)."), e);
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    private static long Leb128(BinaryReader reader)
    {
        long result = 0;
        for (int i = 0; i < 9; i++)
        {
            long b = reader.ReadByte();
            result |= (b & 0x7f) << (i * 7);
            if ((b & 0x80) == 0) return result;
        }
        throw new FormatException("a LEB128 length is longer than 9 bytes.");
    }
}
