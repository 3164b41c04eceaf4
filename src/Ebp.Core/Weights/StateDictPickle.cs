using System.Buffers.Binary;
using System.Text;
using static TorchSharp.torch;

namespace Ebp.Weights;

/// <summary>
/// A restricted reader of the <c>data.pkl</c> of a <c>torch.save</c> archive: it understands only the pickle
/// opcodes and the handful of globals a saved <c>state_dict</c> uses, and never calls anything. Every length is
/// checked against the bytes that are left, so a small pickle cannot make it allocate more than a small multiple
/// of its own size; tensor data is not read here (see <see cref="PyTorchZipReader"/>).
/// </summary>
internal static class StateDictPickle
{
    /// <summary>A storage (<c>data/KEY</c> in the archive) as the pickle declares it.</summary>
    internal sealed record Storage(string Key, ScalarType DType, int ElementSize, long Numel);

    /// <summary>One tensor of the state dict: a strided view of a storage.</summary>
    internal sealed record TensorRef(string Name, Storage Storage, long Offset, long[] Shape, long[] Stride);

    private sealed record Global(string Module, string Name)
    {
        public override string ToString() => $"{Module}.{Name}";
    }

    /// <summary>A Python dict or OrderedDict, in insertion order.</summary>
    private sealed class PyDict
    {
        public readonly List<KeyValuePair<object?, object?>> Items = new();
    }

    private static readonly Dictionary<string, (ScalarType Type, int Size)> StorageTypes = new(StringComparer.Ordinal)
    {
        ["DoubleStorage"] = (ScalarType.Float64, 8),
        ["FloatStorage"] = (ScalarType.Float32, 4),
        ["HalfStorage"] = (ScalarType.Float16, 2),
        ["BFloat16Storage"] = (ScalarType.BFloat16, 2),
        ["LongStorage"] = (ScalarType.Int64, 8),
        ["IntStorage"] = (ScalarType.Int32, 4),
        ["ShortStorage"] = (ScalarType.Int16, 2),
        ["CharStorage"] = (ScalarType.Int8, 1),
        ["ByteStorage"] = (ScalarType.Byte, 1),
        ["BoolStorage"] = (ScalarType.Bool, 1),
    };

    /// <summary>Parses <paramref name="pickle"/> into the state dict's tensors, in file order.</summary>
    /// <exception cref="FormatException">Anything that is not a plain <c>state_dict</c> of tensors (the message says what).</exception>
    public static List<TensorRef> Parse(byte[] pickle)
    {
        var stack = new List<object?>();
        var marks = new List<int>(); // stack heights at each MARK, so that popping to a mark is O(1) to find
        var memo = new Dictionary<long, object?>();
        var storages = new Dictionary<string, Storage>(StringComparer.Ordinal);
        int pos = 0;

        ReadOnlySpan<byte> Take(long n)
        {
            if (n < 0 || n > pickle.Length - pos)
                throw new FormatException($"the pickle declares {n} bytes at offset {pos}, but only {pickle.Length - pos} are left.");
            var s = pickle.AsSpan(pos, (int)n);
            pos += (int)n;
            return s;
        }
        object? Pop()
        {
            if (stack.Count == 0 || (marks.Count > 0 && stack.Count <= marks[^1]))
                throw new FormatException($"the pickle pops past a mark or an empty stack at offset {pos}.");
            var v = stack[^1];
            stack.RemoveAt(stack.Count - 1);
            return v;
        }
        List<object?> PopToMark()
        {
            if (marks.Count == 0) throw new FormatException($"the pickle has no mark to pop to at offset {pos}.");
            int i = marks[^1];
            marks.RemoveAt(marks.Count - 1);
            var items = stack.GetRange(i, stack.Count - i);
            stack.RemoveRange(i, stack.Count - i);
            return items;
        }
        string Line()
        {
            int end = Array.IndexOf(pickle, (byte)'\n', pos);
            if (end < 0 || end - pos > 256) throw new FormatException($"the pickle has an unterminated or overlong text argument at offset {pos}.");
            var s = Encoding.UTF8.GetString(pickle, pos, end - pos);
            pos = end + 1;
            return s;
        }
        PyDict Dict(object? v) => v as PyDict ?? throw new FormatException($"the pickle sets items on a {Describe(v)} at offset {pos}.");

        while (true)
        {
            if (pos >= pickle.Length) throw new FormatException("the pickle ends without a STOP opcode.");
            byte op = pickle[pos++];
            switch (op)
            {
                case 0x80: Take(1); break;                                   // PROTO
                case 0x95: Take(8); break;                                   // FRAME
                case (byte)'.':                                              // STOP
                    return Finish(Pop());
                case (byte)'(': marks.Add(stack.Count); break;               // MARK
                case (byte)'0': Pop(); break;                                // POP
                case (byte)'1': PopToMark(); break;                          // POP_MARK
                case (byte)'2': { var v = Pop(); stack.Add(v); stack.Add(v); break; } // DUP
                case (byte)'N': stack.Add(null); break;
                case 0x88: stack.Add(true); break;                           // NEWTRUE
                case 0x89: stack.Add(false); break;                          // NEWFALSE
                case (byte)'J': stack.Add((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break;
                case (byte)'K': stack.Add((long)Take(1)[0]); break;
                case (byte)'M': stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break;
                case 0x8a:                                                   // LONG1
                {
                    int n = Take(1)[0];
                    if (n > 8) throw new FormatException($"the pickle has an integer of {n} bytes at offset {pos}; at most 8 are supported.");
                    var b = Take(n);
                    long v = 0;
                    for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
                    if (n > 0 && n < 8 && (b[n - 1] & 0x80) != 0) v -= 1L << (8 * n);
                    stack.Add(v);
                    break;
                }
                case (byte)'G': stack.Add(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break; // BINFLOAT
                case (byte)'X': stack.Add(Utf8(Take(BinaryPrimitives.ReadUInt32LittleEndian(Take(4))))); break;
                case 0x8c: stack.Add(Utf8(Take(Take(1)[0]))); break;        // SHORT_BINUNICODE
                case 0x8d: stack.Add(Utf8(Take((long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(Take(8)), long.MaxValue)))); break;
                case (byte)'T': stack.Add(Latin1(Take(BinaryPrimitives.ReadInt32LittleEndian(Take(4))))); break; // BINSTRING
                case (byte)'U': stack.Add(Latin1(Take(Take(1)[0]))); break;  // SHORT_BINSTRING
                case (byte)'B': stack.Add(Take(BinaryPrimitives.ReadUInt32LittleEndian(Take(4))).ToArray()); break;
                case (byte)'C': stack.Add(Take(Take(1)[0]).ToArray()); break;
                case (byte)')': stack.Add(Array.Empty<object?>()); break;   // EMPTY_TUPLE
                case (byte)'t': stack.Add(PopToMark().ToArray()); break;    // TUPLE
                case 0x85: stack.Add(new[] { Pop() }); break;
                case 0x86: { var b = Pop(); var a = Pop(); stack.Add(new[] { a, b }); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); stack.Add(new[] { a, b, c }); break; }
                case (byte)']': stack.Add(new List<object?>()); break;       // EMPTY_LIST
                case (byte)'l': stack.Add(PopToMark()); break;               // LIST
                case (byte)'a':                                              // APPEND
                {
                    var v = Pop();
                    if (stack.Count == 0 || stack[^1] is not List<object?> list) throw new FormatException($"the pickle appends to a non-list at offset {pos}.");
                    list.Add(v);
                    break;
                }
                case (byte)'e':                                              // APPENDS
                {
                    var items = PopToMark();
                    if (stack.Count == 0 || stack[^1] is not List<object?> list) throw new FormatException($"the pickle appends to a non-list at offset {pos}.");
                    list.AddRange(items);
                    break;
                }
                case (byte)'}': stack.Add(new PyDict()); break;              // EMPTY_DICT
                case (byte)'d':                                              // DICT
                {
                    var items = PopToMark();
                    var d = new PyDict();
                    for (int i = 0; i + 1 < items.Count; i += 2) d.Items.Add(new(items[i], items[i + 1]));
                    stack.Add(d);
                    break;
                }
                case (byte)'s':                                              // SETITEM
                {
                    var v = Pop(); var k = Pop();
                    if (stack.Count == 0) throw new FormatException($"the pickle sets an item with no dict at offset {pos}.");
                    Dict(stack[^1]).Items.Add(new(k, v));
                    break;
                }
                case (byte)'u':                                              // SETITEMS
                {
                    var items = PopToMark();
                    if (items.Count % 2 != 0) throw new FormatException($"the pickle sets an odd number of items at offset {pos}.");
                    if (stack.Count == 0) throw new FormatException($"the pickle sets items with no dict at offset {pos}.");
                    var d = Dict(stack[^1]);
                    for (int i = 0; i < items.Count; i += 2) d.Items.Add(new(items[i], items[i + 1]));
                    break;
                }
                case (byte)'q': memo[Take(1)[0]] = Peek(stack, marks, pos); break; // BINPUT
                case (byte)'r': memo[BinaryPrimitives.ReadUInt32LittleEndian(Take(4))] = Peek(stack, marks, pos); break;
                case 0x94: memo[memo.Count] = Peek(stack, marks, pos); break; // MEMOIZE
                case (byte)'h': stack.Add(Get(memo, Take(1)[0], pos)); break;
                case (byte)'j': stack.Add(Get(memo, BinaryPrimitives.ReadUInt32LittleEndian(Take(4)), pos)); break;
                case (byte)'c': { var module = Line(); var name = Line(); stack.Add(Allow(module, name)); break; } // GLOBAL
                case 0x93:                                                   // STACK_GLOBAL
                {
                    var name = Pop() as string; var module = Pop() as string;
                    if (module is null || name is null) throw new FormatException($"the pickle names a global with non-strings at offset {pos}.");
                    stack.Add(Allow(module, name));
                    break;
                }
                case (byte)'Q': stack.Add(PersistentLoad(Pop(), storages)); break; // BINPERSID
                case (byte)'R':                                              // REDUCE
                {
                    var args = Pop() as object?[] ?? throw new FormatException($"the pickle calls with non-tuple arguments at offset {pos}.");
                    var f = Pop() as Global ?? throw new FormatException($"the pickle calls a non-function at offset {pos}.");
                    stack.Add(Reduce(f, args));
                    break;
                }
                case (byte)'b':                                              // BUILD
                {
                    var state = Pop();
                    // An OrderedDict's state is its _metadata (module versions), which loading does not need.
                    if (stack.Count == 0 || stack[^1] is not PyDict || state is not (PyDict or null or object?[]))
                        throw new FormatException($"the pickle sets the state of a {(stack.Count == 0 ? "missing object" : Describe(stack[^1]))} at offset {pos}; only a state_dict is supported.");
                    break;
                }
                default:
                    throw new FormatException($"the pickle uses opcode 0x{op:x2} at offset {pos - 1}, which a saved state_dict does not use.");
            }
        }
    }

    private static object? Peek(List<object?> stack, List<int> marks, int pos) =>
        stack.Count > 0 && (marks.Count == 0 || stack.Count > marks[^1]) ? stack[^1] : throw new FormatException($"the pickle memoises an empty stack at offset {pos}.");

    private static object? Get(Dictionary<long, object?> memo, long key, int pos) =>
        memo.TryGetValue(key, out var v) ? v : throw new FormatException($"the pickle refers to memo entry {key}, which does not exist (offset {pos}).");

    private static string Utf8(ReadOnlySpan<byte> b)
    {
        try { return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(b); }
        catch (DecoderFallbackException) { throw new FormatException("the pickle has a string that is not valid UTF-8."); }
    }

    private static string Latin1(ReadOnlySpan<byte> b) => Encoding.Latin1.GetString(b);

    private static string Describe(object? v) => v switch
    {
        null => "None",
        string => "string",
        long => "integer",
        Global g => $"global {g}",
        PyDict => "dict",
        TensorRef => "tensor",
        _ => v.GetType().Name,
    };

    private static Global Allow(string module, string name)
    {
        var g = new Global(module, name);
        bool ok = (module, name) switch
        {
            ("collections", "OrderedDict") => true,
            ("torch._utils", "_rebuild_tensor_v2" or "_rebuild_tensor" or "_rebuild_parameter") => true,
            ("torch", _) => StorageTypes.ContainsKey(name),
            _ => false,
        };
        if (!ok)
            throw new FormatException($"the pickle refers to the Python object '{g}', which a saved state_dict never needs; " +
                "the file was refused without running anything. Only state_dicts of tensors can be loaded.");
        return g;
    }

    private static Storage PersistentLoad(object? pid, Dictionary<string, Storage> storages)
    {
        if (pid is not object?[] t || t.Length < 5 || t[0] is not "storage" || t[1] is not Global type || t[2] is not string key || t[4] is not long numel)
            throw new FormatException("the pickle has a persistent id that is not a ('storage', type, key, location, size) tuple.");
        if (!StorageTypes.TryGetValue(type.Name, out var dt) || type.Module != "torch")
            throw new FormatException($"the pickle refers to storage type '{type}', which is not supported.");
        if (numel < 0) throw new FormatException($"storage '{key}' declares {numel} elements.");
        var s = new Storage(key, dt.Type, dt.Size, numel);
        if (storages.TryGetValue(key, out var old))
        {
            if (old != s) throw new FormatException($"storage '{key}' is declared twice with different types or sizes.");
            return old;
        }
        storages[key] = s;
        return s;
    }

    private static object Reduce(Global f, object?[] args)
    {
        switch (f.Module, f.Name)
        {
            case ("collections", "OrderedDict"):
            {
                // torch.save pickles OrderedDict() and then sets items; other writers pass a list of (key, value) pairs.
                var d = new PyDict();
                if (args.Length == 0) return d;
                IEnumerable<object?>? pairs = args.Length == 1 ? args[0] as List<object?> ?? (IEnumerable<object?>?)(args[0] as object?[]) : null;
                if (pairs is null)
                    throw new FormatException("the pickle builds an OrderedDict from arguments other than a list of pairs.");
                foreach (var p in pairs)
                {
                    if (p is not object?[] { Length: 2 } kv) throw new FormatException("the pickle builds an OrderedDict from a list that is not of pairs.");
                    d.Items.Add(new(kv[0], kv[1]));
                }
                return d;
            }
            case ("torch._utils", "_rebuild_parameter"):
                throw new FormatException("the file holds parameters (a whole model object), not a state_dict. " +
                    "Re-save it in Python with torch.save(model.state_dict(), path).");
            case ("torch._utils", "_rebuild_tensor_v2" or "_rebuild_tensor"):
                if (args.Length < 4 || args[0] is not Storage storage || args[1] is not long offset
                    || args[2] is not object?[] size || args[3] is not object?[] stride)
                    throw new FormatException("the pickle rebuilds a tensor with unexpected arguments.");
                return new TensorRef("", storage, offset, Longs(size, "shape"), Longs(stride, "stride"));
            default:
                throw new FormatException($"the pickle calls '{f}', which is not a function a state_dict uses.");
        }
    }

    private static long[] Longs(object?[] values, string what)
    {
        if (values.Length > 64) throw new FormatException($"a tensor {what} has {values.Length} dimensions.");
        var r = new long[values.Length];
        for (int i = 0; i < r.Length; i++)
            r[i] = values[i] is long v && v >= 0 ? v : throw new FormatException($"a tensor {what} has an invalid entry {values[i]}.");
        return r;
    }

    private static List<TensorRef> Finish(object? root)
    {
        if (root is not PyDict d)
            throw new FormatException($"the pickle holds a {Describe(root)}, not a state_dict (a dict of name → tensor).");
        var result = new List<TensorRef>(d.Items.Count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (k, v) in d.Items)
        {
            if (k is not string name)
                throw new FormatException($"the state_dict has a key that is a {Describe(k)}, not a string.");
            if (v is not TensorRef t)
                throw new FormatException($"entry \"{name}\" is not a tensor ({Describe(v)}); save the model's state_dict(), not the model object.");
            if (!seen.Add(name))
                throw new FormatException($"the state_dict lists \"{name}\" twice.");
            result.Add(t with { Name = name });
        }
        return result;
    }
}
