using System.Numerics;
using System.Runtime.InteropServices;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Ebp.MLNet.Internal;

/// <summary>One row's model input, read from the image (and label) column.</summary>
internal sealed class RowInput
{
    public RowInput(StageConfig config, bool keepDisplay)
    {
        Pixels = new float[config.PixelCount];
        if (keepDisplay) Display = new byte[config.ImageHeight * config.ImageWidth * 3];
    }

    /// <summary>Normalised planar pixels, <c>[3, H, W]</c>, model channel order.</summary>
    public float[] Pixels { get; }

    /// <summary>RGB bytes, interleaved <c>[H, W, 3]</c>, for the overlay (null when no overlay is produced).</summary>
    public byte[]? Display { get; }

    /// <summary>The target class of a label-column target, else −1.</summary>
    public int Target { get; set; } = -1;

    /// <summary>The row position, for messages.</summary>
    public long Position { get; set; }

    /// <summary>Why the row cannot be computed; null when it is valid.</summary>
    public string? Error { get; set; }

    public Exception? ErrorCause { get; set; }

    public void Reset(long position)
    {
        Position = position;
        Target = -1;
        Error = null;
        ErrorCause = null;
    }
}

/// <summary>
/// Reads the image and label of the current row of a <see cref="DataViewRow"/> into a <see cref="RowInput"/>,
/// turning read failures into row errors.
/// </summary>
internal sealed class RowReader
{
    private readonly Binding _binding;
    private readonly StageConfig _config;
    private readonly ValueGetter<MLImage>? _imageGetter;
    private readonly ValueGetter<VBuffer<float>>? _vectorGetter;
    private readonly Func<long>? _labelGetter;
    private VBuffer<float> _vector;
    private readonly ValueGetter<MLImage>? _sourceImageGetter;
    private MLImage? _sourceImage;
    private string? _lastLabelName;

    public RowReader(DataViewRow row, Binding binding)
    {
        _binding = binding;
        _config = binding.Config;
        if (binding.ImageIsVector) _vectorGetter = row.GetGetter<VBuffer<float>>(binding.Image);
        else _imageGetter = row.GetGetter<MLImage>(binding.Image);
        if (binding.SourceImage is { } source) _sourceImageGetter = row.GetGetter<MLImage>(source);
        if (binding.Label is { } label)
        {
            if (binding.LabelEncoding == LabelEncoding.Name)
            {
                var names = _config.ClassNames!.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => (long)p.i, StringComparer.Ordinal);
                var g = row.GetGetter<ReadOnlyMemory<char>>(label);
                // A name the model does not know is a missing label (−1), reported with the name.
                _labelGetter = () =>
                {
                    ReadOnlyMemory<char> v = default;
                    g(ref v);
                    _lastLabelName = v.ToString();
                    return names.TryGetValue(_lastLabelName, out var cls) ? cls : -1;
                };
            }
            else
            {
                _labelGetter = MakeLabelGetter(row, label, binding.LabelEncoding);
            }
        }
    }

    /// <summary>Reads the current row; an unreadable image or label is recorded in <see cref="RowInput.Error"/>.</summary>
    public void Read(RowInput dst, long position) => Read(dst, position, useKept: false, null, null);

    /// <summary>
    /// Like <see cref="Read(RowInput, long)"/>, with the row's image already read by the caller (which passes the same
    /// image through), so that it is decoded once.
    /// </summary>
    public void Read(RowInput dst, long position, MLImage? image, Exception? imageError) => Read(dst, position, useKept: true, image, imageError);

    private void Read(RowInput dst, long position, bool useKept, MLImage? keptImage, Exception? keptError)
    {
        dst.Reset(position);
        try
        {
            if (keptError is not null) throw keptError;
            if (_vectorGetter is not null)
            {
                if (_sourceImageGetter is not null)
                {
                    var column = _binding.SourceImage!.Value.Name;
                    try
                    {
                        _sourceImageGetter(ref _sourceImage!);
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        dst.Error = $"the image in column '{column}' (the source of '{_config.InputColumn}') could not be read: {e.Message}";
                        dst.ErrorCause = e;
                        return;
                    }
                    if (_sourceImage is null)
                    {
                        dst.Error = $"the image in column '{column}' (the source of '{_config.InputColumn}') is missing (null, e.g. an empty path)";
                        return;
                    }
                    if (ImageIntegrity.Problem(_sourceImage) is { } problem)
                    {
                        dst.Error = $"the image in column '{column}' (the source of '{_config.InputColumn}') {problem}";
                        return;
                    }
                }
                _vectorGetter(ref _vector);
                if (_vector.Length != _config.PixelCount)
                {
                    dst.Error = $"the vector in column '{_config.InputColumn}' has {_vector.Length} values, expected {_config.PixelCount}";
                    return;
                }
                _vector.CopyTo(dst.Pixels.AsSpan());
                if (dst.Display is not null) Pixels.VectorToDisplay(dst.Pixels, _config, dst.Display);
                Pixels.NormaliseInPlace(dst.Pixels, _config);
            }
            else
            {
                MLImage? image = keptImage;
                if (!useKept) _imageGetter!(ref image!);
                if (image is null)
                {
                    dst.Error = $"the image in column '{_config.InputColumn}' is missing (null, e.g. an empty path)";
                    return;
                }
                if (ImageIntegrity.Problem(image) is { } problem)
                {
                    dst.Error = $"the image in column '{_config.InputColumn}' {problem}";
                    return;
                }
                Pixels.FromImage(image, _config, dst.Pixels, dst.Display);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            dst.Error = $"the image in column '{_config.InputColumn}' could not be read: {e.Message}";
            dst.ErrorCause = e;
            return;
        }

        if (!AllFinite(dst.Pixels))
        {
            dst.Error = $"the image in column '{_config.InputColumn}' contains NaN or infinity";
            return;
        }

        if (_labelGetter is not null)
        {
            long raw;
            try
            {
                raw = _labelGetter();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                dst.Error = $"the label in column '{_config.LabelColumn}' could not be read: {e.Message}";
                dst.ErrorCause = e;
                return;
            }
            long cls = _binding.LabelEncoding == LabelEncoding.Key ? raw - 1 : raw;
            if (cls < 0 && _binding.LabelEncoding == LabelEncoding.Name)
                dst.Error = $"the label in column '{_config.LabelColumn}' is \"{_lastLabelName}\", which is not one of the model's class names";
            else if (cls < 0)
                dst.Error = $"the label in column '{_config.LabelColumn}' is missing ({(_binding.LabelEncoding == LabelEncoding.Key ? "key value 0" : $"value {raw}")})";
            else if (cls >= _config.NumClasses)
                dst.Error = $"the label in column '{_config.LabelColumn}' is class {cls}, but the model has {_config.NumClasses} classes (0..{_config.NumClasses - 1})";
            else
                dst.Target = (int)cls;
        }
    }

    /// <summary>Whether every value is finite: v − v is 0 for finite v and NaN for NaN and ±∞ (vectorised).</summary>
    internal static bool AllFinite(ReadOnlySpan<float> values)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && values.Length >= Vector<float>.Count)
        {
            var vectors = MemoryMarshal.Cast<float, Vector<float>>(values);
            foreach (var v in vectors)
                if (!Vector.EqualsAll(v - v, Vector<float>.Zero)) return false;
            i = vectors.Length * Vector<float>.Count;
        }
        for (; i < values.Length; i++)
            if (!float.IsFinite(values[i])) return false;
        return true;
    }

    private static Func<long> MakeLabelGetter(DataViewRow row, DataViewSchema.Column column, LabelEncoding encoding)
    {
        var t = column.Type.RawType;
        if (t == typeof(byte)) { var g = row.GetGetter<byte>(column); return () => { byte v = 0; g(ref v); return v; }; }
        if (t == typeof(sbyte)) { var g = row.GetGetter<sbyte>(column); return () => { sbyte v = 0; g(ref v); return v; }; }
        if (t == typeof(ushort)) { var g = row.GetGetter<ushort>(column); return () => { ushort v = 0; g(ref v); return v; }; }
        if (t == typeof(short)) { var g = row.GetGetter<short>(column); return () => { short v = 0; g(ref v); return v; }; }
        if (t == typeof(uint)) { var g = row.GetGetter<uint>(column); return () => { uint v = 0; g(ref v); return v; }; }
        if (t == typeof(int)) { var g = row.GetGetter<int>(column); return () => { int v = 0; g(ref v); return v; }; }
        if (t == typeof(ulong))
        {
            var g = row.GetGetter<ulong>(column);
            return () => { ulong v = 0; g(ref v); return v > long.MaxValue ? long.MaxValue : (long)v; };
        }
        if (t == typeof(long)) { var g = row.GetGetter<long>(column); return () => { long v = 0; g(ref v); return v; }; }
        throw new InvalidOperationException($"Label column '{column.Name}' has raw type {t.Name} ({encoding}).");
    }
}
