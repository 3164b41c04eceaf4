using System.Runtime.CompilerServices;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Ebp.MLNet.Internal;

/// <summary>How the label column encodes the class.</summary>
internal enum LabelEncoding { None, Key, Integer, Name }

/// <summary>
/// The stage bound to one input schema: the input columns it reads, the output schema, and the indices of the added
/// columns. Creating it validates the schema with ML.NET's exception types and wording.
/// </summary>
internal sealed class Binding
{
    private Binding(DataViewSchema input, DataViewSchema output, StageConfig config, DataViewSchema.Column image,
                    bool imageIsVector, DataViewSchema.Column? label, LabelEncoding labelEncoding)
    {
        Input = input;
        Output = output;
        Config = config;
        Image = image;
        ImageIsVector = imageIsVector;
        Label = label;
        LabelEncoding = labelEncoding;
        if (imageIsVector)
        {
            // The image the pixels came from, read as well: a missing or truncated image is indistinguishable from a
            // black one once it is pixels. The schema's first image column is the one LoadImages decoded (ResizeImages
            // in place hides it but keeps it readable): null for an empty path, tagged with the file for the truncation check.
            SourceImage = input.Where(c => c.Type is ImageDataViewType).Select(c => (DataViewSchema.Column?)c).FirstOrDefault();
        }
        int next = input.Count;
        SaliencyIndex = next++;
        PredictedIndex = config.PredictedColumn is null ? -1 : next++;
        ScoresIndex = config.ScoresColumn is null ? -1 : next++;
        TopKIndex = config.HasTopKColumn ? next++ : -1;
        OverlayIndex = config.OverlayColumn is null ? -1 : next++;
        ErrorIndex = config.ErrorColumn is null ? -1 : next++;
    }

    public DataViewSchema Input { get; }
    public DataViewSchema Output { get; }
    public StageConfig Config { get; }
    public DataViewSchema.Column Image { get; }
    public bool ImageIsVector { get; }
    public DataViewSchema.Column? Label { get; }

    /// <summary>With vector input: the image column the pixels were extracted from, if the schema shows one; else null.</summary>
    public DataViewSchema.Column? SourceImage { get; }
    public LabelEncoding LabelEncoding { get; }
    public int SaliencyIndex { get; }
    public int PredictedIndex { get; }
    public int ScoresIndex { get; }
    public int TopKIndex { get; }
    public int OverlayIndex { get; }
    public int ErrorIndex { get; }

    /// <summary>Whether an output column index is one of the stage's own columns.</summary>
    public bool IsAdded(int outputIndex) => outputIndex >= Input.Count;

    /// <summary>Validates <paramref name="input"/> against a resolved configuration and builds the output schema.</summary>
    public static Binding Create(DataViewSchema input, StageConfig config)
    {
        ArgumentNullException.ThrowIfNull(input);
        var (image, isVector, label, encoding) = CheckColumns(input, config, config.NumClasses);
        var b = new DataViewSchema.Builder();
        b.AddColumns(input);
        b.AddColumn(config.OutputColumn, config.TopK > 1
            ? new VectorDataViewType(NumberDataViewType.Single, config.TopK, config.MapHeight, config.MapWidth)
            : new VectorDataViewType(NumberDataViewType.Single, config.MapHeight, config.MapWidth));
        var names = config.ClassNamesOrIndices.Select(n => n.AsMemory()).ToArray();
        void Names(ref VBuffer<ReadOnlyMemory<char>> dst) => new VBuffer<ReadOnlyMemory<char>>(names.Length, names).CopyTo(ref dst);
        if (config.PredictedColumn is not null)
        {
            if (config.PredictedIsKey)
            {
                var keyValues = new DataViewSchema.Annotations.Builder();
                keyValues.Add(KeyValuesKind, new VectorDataViewType(TextDataViewType.Instance, names.Length), (ValueGetter<VBuffer<ReadOnlyMemory<char>>>)Names);
                b.AddColumn(config.PredictedColumn, new KeyDataViewType(typeof(uint), config.NumClasses), keyValues.ToAnnotations());
            }
            else
            {
                b.AddColumn(config.PredictedColumn, NumberDataViewType.Int32);
            }
        }
        if (config.ScoresColumn is not null)
        {
            var slotNames = new DataViewSchema.Annotations.Builder();
            if (config.ClassNames is not null) slotNames.Add(SlotNamesKind, new VectorDataViewType(TextDataViewType.Instance, names.Length), (ValueGetter<VBuffer<ReadOnlyMemory<char>>>)Names);
            b.AddColumn(config.ScoresColumn, new VectorDataViewType(NumberDataViewType.Single, config.NumClasses), slotNames.ToAnnotations());
        }
        if (config.HasTopKColumn) b.AddColumn(config.TopKClassesColumn!, new VectorDataViewType(NumberDataViewType.Int32, config.TopK));
        if (config.OverlayColumn is not null) b.AddColumn(config.OverlayColumn, new ImageDataViewType(config.ImageHeight, config.ImageWidth));
        if (config.ErrorColumn is not null) b.AddColumn(config.ErrorColumn, TextDataViewType.Instance);
        return new Binding(input, b.ToSchema(), config, image, isVector, label, encoding);
    }

    // ML.NET's annotation kinds (its AnnotationUtils.Kinds is internal).
    private const string KeyValuesKind = "KeyValues";
    private const string SlotNamesKind = "SlotNames";

    private static string ExpectedImageType(StageConfig c) =>
        $"Image or Vector<Single, {c.Channels}, {c.ImageHeight}, {c.ImageWidth}> (planar pixels, size {c.PixelCount})";

    private static string ExpectedLabelType(StageConfig c) =>
        c.ClassNames is null ? "Key or an integer type (Int32, Int64, UInt32, …)" : "Key, an integer type (Int32, Int64, UInt32, …) or String (a class name)";

    /// <summary>Checks the image and label columns of a full schema.</summary>
    /// <param name="input">The input schema.</param>
    /// <param name="config">The stage settings.</param>
    /// <param name="numClasses">The model's class count if known (checks a key label's cardinality).</param>
    public static (DataViewSchema.Column Image, bool IsVector, DataViewSchema.Column? Label, LabelEncoding Encoding)
        CheckColumns(DataViewSchema input, StageConfig config, int? numClasses)
    {
        var image = input.GetColumnOrNull(config.InputColumn)
                    ?? throw SchemaMismatch("input", config.InputColumn);
        bool isVector;
        switch (image.Type)
        {
            case ImageDataViewType:
                isVector = false;
                break;
            case VectorDataViewType v when v.ItemType == NumberDataViewType.Single && v.IsKnownSize && v.Size == config.PixelCount
                                           && (v.Dimensions.Length == 1 || v.Dimensions.SequenceEqual(new[] { config.Channels, config.ImageHeight, config.ImageWidth })):
                isVector = true;
                break;
            default:
                throw SchemaMismatch("input", config.InputColumn, ExpectedImageType(config), image.Type.ToString()!);
        }

        DataViewSchema.Column? label = null;
        var encoding = LabelEncoding.None;
        if (config.Target == SaliencyTargetKind.LabelColumn)
        {
            var l = input.GetColumnOrNull(config.LabelColumn!) ?? throw SchemaMismatch("label", config.LabelColumn!);
            if (l.Type is KeyDataViewType key)
            {
                if (numClasses is > 0 && key.Count > (ulong)numClasses)
                    throw SchemaMismatch("label", config.LabelColumn!, $"Key with at most {numClasses} values (one per model class)", l.Type.ToString()!);
                encoding = LabelEncoding.Key;
            }
            else if (IsInteger(l.Type.RawType))
            {
                encoding = LabelEncoding.Integer;
            }
            else if (l.Type is TextDataViewType && config.ClassNames is not null)
            {
                encoding = LabelEncoding.Name;
            }
            else
            {
                throw SchemaMismatch("label", config.LabelColumn!, ExpectedLabelType(config), l.Type.ToString()!);
            }
            label = l;
        }
        return (image, isVector, label, encoding);
    }

    /// <summary>Checks the image and label columns of a schema shape (estimator schema propagation).</summary>
    public static void CheckShape(SchemaShape input, StageConfig config)
    {
        var image = Find(input, config.InputColumn) ?? throw SchemaMismatch("input", config.InputColumn);
        bool ok = (image.Kind == SchemaShape.Column.VectorKind.Scalar && image.ItemType is ImageDataViewType)
                  || (image.Kind == SchemaShape.Column.VectorKind.Vector && !image.IsKey && image.ItemType == NumberDataViewType.Single);
        if (!ok) throw SchemaMismatch("input", config.InputColumn, ExpectedImageType(config), TypeString(image));

        if (config.Target == SaliencyTargetKind.LabelColumn)
        {
            var label = Find(input, config.LabelColumn!) ?? throw SchemaMismatch("label", config.LabelColumn!);
            if (label.Kind != SchemaShape.Column.VectorKind.Scalar
                || !(label.IsKey || IsInteger(label.ItemType.RawType) || (label.ItemType is TextDataViewType && config.ClassNames is not null)))
                throw SchemaMismatch("label", config.LabelColumn!, ExpectedLabelType(config), TypeString(label));
        }
    }

    /// <summary>The estimator's output shape: the input columns plus the stage's columns.</summary>
    public static SchemaShape OutputShape(SchemaShape input, StageConfig config)
    {
        var columns = input.ToDictionary(c => c.Name);
        columns[config.OutputColumn] = ShapeColumn(config.OutputColumn, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single);
        var textNames = new SchemaShape([ShapeColumn(KeyValuesKind, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance)]);
        if (config.PredictedColumn is not null)
            columns[config.PredictedColumn] = config.PredictedIsKey
                ? ShapeColumn(config.PredictedColumn, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.UInt32, isKey: true, textNames)
                : ShapeColumn(config.PredictedColumn, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Int32);
        if (config.ScoresColumn is not null)
            columns[config.ScoresColumn] = ShapeColumn(config.ScoresColumn, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false,
                config.ClassNames is null ? null
                    : new SchemaShape([ShapeColumn(SlotNamesKind, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance)]));
        if (config.HasTopKColumn)
            columns[config.TopKClassesColumn!] = ShapeColumn(config.TopKClassesColumn!, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Int32);
        if (config.OverlayColumn is not null)
            columns[config.OverlayColumn] = ShapeColumn(config.OverlayColumn, SchemaShape.Column.VectorKind.Scalar,
                                                        new ImageDataViewType(config.ImageHeight, config.ImageWidth));
        if (config.ErrorColumn is not null)
            columns[config.ErrorColumn] = ShapeColumn(config.ErrorColumn, SchemaShape.Column.VectorKind.Scalar, TextDataViewType.Instance);
        return new SchemaShape(columns.Values);
    }

    /// <summary>The input columns needed to produce the given output columns.</summary>
    public IEnumerable<DataViewSchema.Column> Dependencies(IEnumerable<DataViewSchema.Column> outputColumns)
    {
        var result = new SortedDictionary<int, DataViewSchema.Column>();
        foreach (var c in outputColumns)
        {
            if (IsAdded(c.Index))
            {
                result[Image.Index] = Image;
                if (Label is { } l) result[l.Index] = l;
                if (SourceImage is { } src) result[src.Index] = src;
            }
            else
            {
                result[c.Index] = Input[c.Index];
            }
        }
        return result.Values;
    }

    private static SchemaShape.Column? Find(SchemaShape shape, string name)
    {
        foreach (var c in shape)
            if (c.Name == name) return c;
        return null;
    }

    /// <summary>
    /// Builds a <see cref="SchemaShape.Column"/>. ML.NET keeps its constructor internal (dotnet/machinelearning#3243), so
    /// the public read-only fields of a default value are filled in place; the fields are the documented public
    /// surface, checked at compile time.
    /// </summary>
    private static SchemaShape.Column ShapeColumn(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType,
                                                  bool isKey = false, SchemaShape? annotations = null)
    {
        var column = default(SchemaShape.Column);
        Unsafe.AsRef(in column.Name) = name;
        Unsafe.AsRef(in column.Kind) = kind;
        Unsafe.AsRef(in column.ItemType) = itemType;
        Unsafe.AsRef(in column.IsKey) = isKey;
        Unsafe.AsRef(in column.Annotations) = annotations ?? new SchemaShape(Array.Empty<SchemaShape.Column>());
        return column;
    }

    /// <summary>A shape column's type the way ML.NET prints it (<c>Vector&lt;Single&gt;</c>, <c>Key&lt;UInt32&gt;</c>).</summary>
    private static string TypeString(SchemaShape.Column c)
    {
        string result = c.ItemType?.ToString() ?? "?";
        if (c.IsKey) result = $"Key<{result}>";
        return c.Kind switch
        {
            SchemaShape.Column.VectorKind.Vector => $"Vector<{result}>",
            SchemaShape.Column.VectorKind.VariableVector => $"VarVector<{result}>",
            _ => result,
        };
    }

    internal static bool IsInteger(Type t) =>
        t == typeof(sbyte) || t == typeof(byte) || t == typeof(short) || t == typeof(ushort)
        || t == typeof(int) || t == typeof(uint) || t == typeof(long) || t == typeof(ulong);

    /// <summary>ML.NET's "Could not find {role} column 'X'" (an <see cref="ArgumentOutOfRangeException"/>).</summary>
    public static ArgumentOutOfRangeException SchemaMismatch(string role, string column) =>
        new("inputSchema", $"Could not find {role} column '{column}'");

    /// <summary>ML.NET's "Schema mismatch for {role} column 'X': expected …, got …".</summary>
    public static ArgumentOutOfRangeException SchemaMismatch(string role, string column, string expected, string actual) =>
        new("inputSchema", $"Schema mismatch for {role} column '{column}': expected {expected}, got {actual}");
}
