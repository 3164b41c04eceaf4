using System.Text;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ebp.Weights;

/// <summary>
/// Loads weights into TorchSharp models with PyTorch's <c>state_dict</c> names, from safetensors, PyTorch
/// (<c>torch.save</c> zip) or TorchSharp (<c>module.save</c>) files. Everything is validated before anything is
/// copied: on any error the model is left untouched.
/// </summary>
public static class WeightLoader
{
    private const string NumBatchesTracked = "num_batches_tracked";

    /// <summary>
    /// Copies the entries of <paramref name="stateDict"/> whose key starts with <paramref name="prefix"/>
    /// (prefix stripped) into the model's parameters and buffers of the same name.
    /// </summary>
    /// <param name="model">The model to load into.</param>
    /// <param name="stateDict">Name → tensor. Not modified and not disposed.</param>
    /// <param name="prefix">Only keys starting with this are used, with the prefix removed (e.g. <c>"model."</c>).
    /// A non-empty prefix without a trailing <c>'.'</c> gets one appended. Keys without the prefix are ignored.</param>
    /// <param name="strict">If true, the (prefixed) keys must equal the model's <c>state_dict</c> keys, except that
    /// BatchNorm <c>num_batches_tracked</c> counters may be absent. If false, missing and unexpected keys are ignored.
    /// Shape and element-type mismatches are errors either way.</param>
    /// <returns>Which keys were loaded, left missing and ignored.</returns>
    /// <exception cref="InvalidOperationException">A <see cref="SaliencySession"/> is open on the model (dispose it first).</exception>
    /// <exception cref="StateDictMismatchException">(an <see cref="ArgumentException"/>) Missing / unexpected keys (strict),
    /// shape mismatches, or a non-floating tensor for a floating parameter. The message lists every offending name;
    /// nothing was copied.</exception>
    /// <remarks>Values are copied with <c>copy_</c> under <c>no_grad</c>, converting element type and device to the model's.</remarks>
    public static WeightLoadResult LoadStateDict(nn.Module model, IReadOnlyDictionary<string, Tensor> stateDict, string prefix = "", bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(stateDict);
        OpenSessions.ThrowIfOpen(model, "the state dict");
        return LoadCore(model, stateDict, prefix, strict, source: "the state dict");
    }

    /// <summary>
    /// Loads a weight file into <paramref name="model"/>. The format is detected from the file's bytes, not its
    /// extension (see <see cref="DetectFormat"/>); otherwise behaves like <see cref="LoadStateDict"/>.
    /// </summary>
    /// <param name="model">The model to load into.</param>
    /// <param name="path">A safetensors, PyTorch zip (<c>.pt</c>/<c>.pth</c>, a saved <c>state_dict</c>) or TorchSharp file.</param>
    /// <param name="prefix">See <see cref="LoadStateDict"/>; e.g. <c>"model."</c> for the reference vectors.</param>
    /// <param name="strict">See <see cref="LoadStateDict"/>.</param>
    /// <returns>Which keys were loaded, left missing and ignored.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidOperationException">A <see cref="SaliencySession"/> is open on the model (dispose it first).</exception>
    /// <exception cref="InvalidDataException">The file is corrupt, truncated or in an unsupported format, or its
    /// contents do not match the model (then the <see cref="Exception.InnerException"/> is a
    /// <see cref="StateDictMismatchException"/> with the details, and the message is the same list). The message names the file.</exception>
    /// <remarks>All tensors read from the file are disposed before returning.</remarks>
    public static WeightLoadResult Load(nn.Module model, string path, string prefix = "", bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        string source = $"'{path}'";
        OpenSessions.ThrowIfOpen(model, source);
        try
        {
            switch (DetectFormat(path))
            {
                case WeightFileFormat.Safetensors:
                {
                    // Names, shapes and types are checked from the header alone; only the tensors the model takes are read.
                    var header = SafetensorsHeader.Read(path);
                    var plan = Match(model, header.Entries.ToDictionary(e => e.Name, e => new TensorInfo(e.DType, e.Shape), StringComparer.Ordinal),
                        prefix, strict, source);
                    var needed = plan.Copies.Select(c => c.Source).ToHashSet(StringComparer.Ordinal);
                    using var read = new TensorDictionary();
                    try
                    {
                        foreach (var (k, t) in ReadSafetensorsData(path, header, needed)) read.Add(k, t);
                    }
                    catch (Exception e) when (e is not (OutOfMemoryException or InvalidDataException))
                    {
                        throw new InvalidDataException($"'{path}': the safetensors data could not be read: {e.Message}", e);
                    }
                    return Copy(model, plan, read);
                }
                case WeightFileFormat.PyTorchZip:
                {
                    using var zip = PyTorchZipReader.Open(path, PickleBudget(model));
                    var plan = Match(model, zip.Tensors.ToDictionary(t => t.Name, t => new TensorInfo(t.Storage.DType, t.Shape), StringComparer.Ordinal),
                        prefix, strict, source);
                    var needed = plan.Copies.Select(c => c.Source).ToHashSet(StringComparer.Ordinal);
                    var wanted = zip.Tensors.Where(t => needed.Contains(t.Name)).ToList();
                    long tensorBytes = wanted.Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b) * t.Storage.ElementSize);
                    long storageBytes = PyTorchZipReader.StorageBytes(wanted);
                    // Views of a larger storage would make reading the model cost more than the model.
                    if (storageBytes > tensorBytes + StorageSlackBytes)
                        throw new InvalidDataException(
                            $"'{path}': the {wanted.Count} tensors the model takes ({tensorBytes} bytes) are views of storages of {storageBytes} bytes; " +
                            "re-save the state_dict with contiguous tensors (e.g. {k: v.clone() for k, v in sd.items()}).");
                    using var read = zip.Read(wanted);
                    return Copy(model, plan, read);
                }
                default:
                {
                    using var stateDict = ReadStateDict(path);
                    return LoadCore(model, stateDict, prefix, strict, source);
                }
            }
        }
        catch (StateDictMismatchException e)
        {
            throw new InvalidDataException(e.Message, e);
        }
    }

    /// <summary>Storage bytes beyond the model's tensors that a PyTorch file may make the loader read.</summary>
    private const long StorageSlackBytes = 1L << 20;

    /// <summary>A <c>data.pkl</c> bound for a model: a state dict pickles to well under a kilobyte per entry.</summary>
    private static long PickleBudget(nn.Module model) => (256L << 10) + 4096L * model.state_dict().Count;

    /// <summary>
    /// Reads every tensor of a weight file, whatever its format (detected with <see cref="DetectFormat"/>).
    /// </summary>
    /// <param name="path">The file.</param>
    /// <returns>Name → tensor on the CPU. The caller owns the tensors: dispose the dictionary.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is corrupt, truncated or unsupported (the message names the file).</exception>
    public static TensorDictionary ReadStateDict(string path) =>
        DetectFormat(path) switch
        {
            WeightFileFormat.Safetensors => ReadSafetensors(path),
            WeightFileFormat.PyTorchZip => ReadPyTorch(path),
            WeightFileFormat.PyTorchLegacy => throw new InvalidDataException(
                $"'{path}' is a legacy (pre-1.6, non-zip) PyTorch file, which is not supported. Re-save it in Python with " +
                "torch.save(model.state_dict(), path) from PyTorch 1.6 or later, or convert it to safetensors."),
            _ => TorchSharpFormatReader.Read(path),
        };

    /// <summary>
    /// Reads a safetensors file (all tensors; <c>__metadata__</c> is skipped, see <see cref="ReadSafetensorsMetadata"/>).
    /// The header is validated against the file size first; the data is then read with TorchSharp.PyBridge.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <returns>Name → tensor (CPU; F32, I64, … as stored), in header order. The caller owns the tensors: dispose the dictionary.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">Bad header length, bad JSON, unsupported dtype, inconsistent or
    /// truncated data (the message names the file and the problem).</exception>
    public static TensorDictionary ReadSafetensors(string path)
    {
        EnsureExists(path);
        var header = SafetensorsHeader.Read(path);

        Dictionary<string, Tensor> loaded;
        using (var scope = NewDisposeScope())
        {
            try
            {
                loaded = Safetensors.LoadStateDict(path);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // PyBridge parses the header with a fixed schema (e.g. it can trip over unusual "__metadata__"
                // values). The header has been validated above, so read the data directly instead.
                try
                {
                    loaded = ReadSafetensorsData(path, header);
                }
                catch (Exception inner) when (inner is not OutOfMemoryException)
                {
                    throw new InvalidDataException(
                        $"'{path}' could not be read as safetensors: {e.Message}; direct read: {inner.Message}", inner);
                }
            }
            foreach (var t in loaded.Values)
                t.MoveToOuterDisposeScope();
        }

        var result = new TensorDictionary();
        try
        {
            foreach (var e in header.Entries)
            {
                if (!loaded.Remove(e.Name, out var t))
                    throw new InvalidDataException($"'{path}': tensor \"{e.Name}\" listed in the header was not read.");
                if (t.dtype != e.DType || !t.shape.SequenceEqual(e.Shape))
                {
                    t.Dispose();
                    throw new InvalidDataException($"'{path}': tensor \"{e.Name}\" was read with an unexpected type or shape.");
                }
                result.Add(e.Name, t);
            }
        }
        catch
        {
            result.Dispose();
            throw;
        }
        finally
        {
            foreach (var t in loaded.Values) t.Dispose();
        }
        return result;
    }

    private static Dictionary<string, Tensor> ReadSafetensorsData(string path, SafetensorsHeader header, IReadOnlySet<string>? only = null)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using var stream = File.OpenRead(path);
        foreach (var e in header.Entries)
        {
            if (only is not null && !only.Contains(e.Name)) continue;
            try
            {
                var t = empty(e.Shape, dtype: e.DType);
                result.Add(e.Name, t);
                if (e.End > e.Begin)
                {
                    stream.Position = header.DataStart + e.Begin;
                    t.ReadBytesFromStream(stream);
                }
            }
            catch
            {
                foreach (var t in result.Values) t.Dispose();
                throw;
            }
        }
        return result;
    }

    /// <summary>Reads the <c>__metadata__</c> string map of a safetensors file (empty if it has none).</summary>
    /// <param name="path">The file.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The header is invalid.</exception>
    public static IReadOnlyDictionary<string, string> ReadSafetensorsMetadata(string path)
    {
        EnsureExists(path);
        return SafetensorsHeader.Read(path).Metadata;
    }

    /// <summary>
    /// Detects a weight file's format from its first bytes: safetensors (8-byte little-endian header length
    /// followed by <c>{</c>), PyTorch zip (<c>PK\x03\x04</c>), legacy PyTorch pickle (<c>0x80</c>, protocol 2–5, then
    /// the torch magic number), otherwise TorchSharp's <c>module.save</c> format.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is empty.</exception>
    public static WeightFileFormat DetectFormat(string path)
    {
        EnsureExists(path);
        Span<byte> head = stackalloc byte[9];
        int n;
        using (var stream = File.OpenRead(path))
        {
            n = 0;
            while (n < head.Length)
            {
                int r = stream.Read(head[n..]);
                if (r == 0) break;
                n += r;
            }
        }
        if (n == 0)
            throw new InvalidDataException($"'{path}' is empty; it is not a weight file.");
        if (n >= 9 && head[8] == (byte)'{')
            return WeightFileFormat.Safetensors;
        if (n >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K' && head[2] == 3 && head[3] == 4)
            return WeightFileFormat.PyTorchZip;
        if (n >= 3 && head[0] == 0x80 && head[1] is >= 2 and <= 5 && head[2] == 0x8a)
            return WeightFileFormat.PyTorchLegacy;
        return WeightFileFormat.TorchSharp;
    }

    private static TensorDictionary ReadPyTorch(string path)
    {
        using var zip = PyTorchZipReader.Open(path);
        long storageBytes = PyTorchZipReader.StorageBytes(zip.Tensors);
        long fileBytes = new FileInfo(path).Length;
        // torch.save stores tensors uncompressed; a recompressed archive may inflate, but not without limit.
        if (storageBytes > 8 * fileBytes + (64L << 20))
            throw new InvalidDataException(
                $"'{path}': its storages declare {storageBytes} bytes, far more than the {fileBytes}-byte file can hold; it was not inflated.");
        return zip.Read(zip.Tensors);
    }

    private static void EnsureExists(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Weight file not found: '{path}'.", path);
    }

    private static bool IsNumBatchesTracked(string key) =>
        key == NumBatchesTracked || key.EndsWith("." + NumBatchesTracked, StringComparison.Ordinal);

    private static bool IsFloating(ScalarType t) =>
        t is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;

    private static bool IsInteger(ScalarType t) =>
        t is ScalarType.Byte or ScalarType.Int8 or ScalarType.Int16 or ScalarType.Int32 or ScalarType.Int64;

    private static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>What a weight source holds for one key, enough to check it against the model without its data.</summary>
    internal readonly record struct TensorInfo(ScalarType DType, long[] Shape, bool Usable = true);

    /// <summary>The outcome of matching a source against the model: target key → source key to copy.</summary>
    private sealed record Plan(List<(string Target, string Source)> Copies, List<string> Tolerated, IReadOnlyList<string> Ignored);

    private static WeightLoadResult LoadCore(nn.Module model, IReadOnlyDictionary<string, Tensor> stateDict, string prefix, bool strict, string source)
    {
        var infos = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
        foreach (var (key, t) in stateDict)
            infos[key] = t is null || t.IsInvalid ? new TensorInfo(ScalarType.Float32, [], Usable: false) : new TensorInfo(t.dtype, t.shape);
        var plan = Match(model, infos, prefix, strict, source);
        return Copy(model, plan, stateDict);
    }

    private static WeightLoadResult Copy(nn.Module model, Plan plan, IReadOnlyDictionary<string, Tensor> stateDict)
    {
        var target = model.state_dict();
        using (torch.no_grad())
        {
            foreach (var (dst, src) in plan.Copies)
                target[dst].copy_(stateDict[src]);
        }
        return new WeightLoadResult(plan.Copies.Select(c => c.Target).ToArray(), plan.Tolerated, plan.Ignored);
    }

    /// <summary>Checks names, shapes and element types of <paramref name="infos"/> against the model.</summary>
    /// <exception cref="StateDictMismatchException">They do not fit (the message lists every offender).</exception>
    private static Plan Match(nn.Module model, IReadOnlyDictionary<string, TensorInfo> infos, string prefix, bool strict, string source)
    {
        prefix ??= "";
        if (prefix.Length > 0 && !prefix.EndsWith('.'))
            prefix += ".";

        // Source keys with the prefix stripped.
        var selected = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
        foreach (var (key, value) in infos)
            if (key.StartsWith(prefix, StringComparison.Ordinal))
                selected[key[prefix.Length..]] = value;

        var target = model.state_dict();

        var missing = new List<string>();        // errors
        var tolerated = new List<string>();      // missing, but fine
        var unexpected = new List<string>();
        var shapeErrors = new List<string>();
        var dtypeErrors = new List<string>();
        var toCopy = new List<(string Target, string Source)>();

        foreach (var (key, dst) in target)
        {
            if (!selected.TryGetValue(key, out var src))
            {
                if (!strict || IsNumBatchesTracked(key)) tolerated.Add(key);
                else missing.Add(key);
                continue;
            }
            if (!src.Usable)
            {
                dtypeErrors.Add($"{prefix}{key}: the tensor is null or disposed");
                continue;
            }
            bool ok = true;
            if (!src.Shape.SequenceEqual(dst.shape))
            {
                shapeErrors.Add($"{prefix}{key}: model {Shape(dst.shape)}, weights {Shape(src.Shape)}");
                ok = false;
            }
            bool typeOk = IsFloating(dst.dtype) ? IsFloating(src.DType)
                : IsInteger(dst.dtype) ? IsInteger(src.DType)
                : src.DType == dst.dtype;
            if (!typeOk)
            {
                string need = IsFloating(dst.dtype) ? "a floating-point tensor is required"
                    : IsInteger(dst.dtype) ? "an integer tensor is required" : $"{dst.dtype} is required";
                dtypeErrors.Add($"{prefix}{key}: model {dst.dtype}, weights {src.DType} ({need})");
                ok = false;
            }
            if (ok) toCopy.Add((key, prefix + key));
        }
        foreach (var key in selected.Keys)
            if (!target.ContainsKey(key))
                unexpected.Add(prefix + key);

        var ignored = strict ? (IReadOnlyList<string>)Array.Empty<string>() : unexpected;
        if ((strict && (missing.Count > 0 || unexpected.Count > 0)) || shapeErrors.Count > 0 || dtypeErrors.Count > 0)
        {
            var strictMissing = strict ? missing : new List<string>();
            var strictUnexpected = strict ? unexpected : new List<string>();
            throw new StateDictMismatchException(
                BuildMessage(model, source, prefix, strict, infos.Keys.ToList(), selected.Count, target.Count,
                    strictMissing, strictUnexpected, shapeErrors, dtypeErrors)
                + SideBySide(target, selected, prefix, strictMissing, strictUnexpected, shapeErrors.Count > 0),
                strictMissing, strictUnexpected, shapeErrors, dtypeErrors);
        }
        return new Plan(toCopy, tolerated, ignored);
    }

    /// <summary>
    /// The model's and the weights' keys in two columns, so a renamed or shifted layer shows at a glance: each
    /// missing key is paired with an unexpected key of the same shape when there is one (in order), and every
    /// shape mismatch is shown with both shapes.
    /// </summary>
    private static string SideBySide(Dictionary<string, Tensor> target, Dictionary<string, TensorInfo> selected, string prefix,
        List<string> missing, List<string> unexpected, bool anyShapeError)
    {
        if (missing.Count == 0 && unexpected.Count == 0 && !anyShapeError) return "";
        var rows = new List<(string Model, string Weights)>();
        var unused = unexpected.ToList();
        var missingSet = missing.ToHashSet(StringComparer.Ordinal);
        foreach (var (key, dst) in target)
        {
            string model = $"{key} {Shape(dst.shape)}";
            if (missingSet.Contains(key))
            {
                int j = unused.FindIndex(u => selected[u[prefix.Length..]].Shape.SequenceEqual(dst.shape));
                if (j >= 0)
                {
                    rows.Add((model, $"{unused[j]} {Shape(selected[unused[j][prefix.Length..]].Shape)}"));
                    unused.RemoveAt(j);
                }
                else rows.Add((model, "(none)"));
            }
            else if (selected.TryGetValue(key, out var src) && !src.Shape.SequenceEqual(dst.shape))
                rows.Add((model, $"{prefix}{key} {Shape(src.Shape)}"));
        }
        foreach (var u in unused)
            rows.Add(("(none)", $"{u} {Shape(selected[u[prefix.Length..]].Shape)}"));
        const int MaxRows = 200;
        int width = Math.Min(60, rows.Max(r => r.Model.Length));
        var sb = new StringBuilder();
        sb.AppendLine();
        sb.AppendLine($"  {"Expected (model)".PadRight(width)}   Found (weights)");
        foreach (var (m, w) in rows.Take(MaxRows))
            sb.AppendLine($"  {m.PadRight(width)}   {w}");
        if (rows.Count > MaxRows)
            sb.AppendLine($"  … and {rows.Count - MaxRows} more rows.");
        return sb.ToString().TrimEnd();
    }

    private static string BuildMessage(nn.Module model, string source, string prefix, bool strict,
        IReadOnlyList<string> sourceKeys, int selectedCount, int targetCount,
        List<string> missing, List<string> unexpected, List<string> shapeErrors, List<string> dtypeErrors)
    {
        var sb = new StringBuilder();
        sb.Append($"Cannot load weights from {source} into {model.GetName()} ({model.GetType().Name}): they do not match the model. ");
        sb.AppendLine("Nothing was copied; the model is unchanged.");
        if (missing.Count > 0)
            sb.AppendLine($"  Missing keys (in the model, absent from the weights) [{missing.Count}]: {string.Join(", ", missing)}");
        if (unexpected.Count > 0)
            sb.AppendLine($"  Unexpected keys (in the weights, not in the model) [{unexpected.Count}]: {string.Join(", ", unexpected)}");
        if (shapeErrors.Count > 0)
            sb.AppendLine($"  Shape mismatches [{shapeErrors.Count}]: {string.Join("; ", shapeErrors)}");
        if (dtypeErrors.Count > 0)
            sb.AppendLine($"  Unusable element types [{dtypeErrors.Count}]: {string.Join("; ", dtypeErrors)}");

        sb.Append("What to do: build the model with the same architecture and configuration (layer sizes, number of classes, ");
        sb.Append("batch norm on/off) as the one the weights were saved from");
        if (prefix.Length > 0 || selectedCount == 0)
        {
            sb.Append($"; check the prefix (\"{prefix}\" selected {selectedCount} of {sourceKeys.Count} entries for a model with {targetCount} entries");
            if (selectedCount == 0 && sourceKeys.Count > 0)
                sb.Append($"; the weights' keys look like: {string.Join(", ", sourceKeys.Take(5))}");
            sb.Append(')');
        }
        if (strict && (missing.Count > 0 || unexpected.Count > 0))
            sb.Append("; or pass strict: false to ignore missing and unexpected keys (shape and type mismatches are always errors)");
        sb.Append('.');
        return sb.ToString();
    }
}
