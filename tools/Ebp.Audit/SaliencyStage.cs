using Ebp.MLNet;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Ebp.Audit;

/// <summary>An input row of a stage: an image (any size, RGBA; the stage converts it) and, for label stages, a class.</summary>
internal sealed class StageRow
{
    /// <summary>An image of any size: ML.NET's image type without a fixed size (see <see cref="SaliencyStage.RegisterImageType"/>).</summary>
    public MLImage? Image { get; set; }

    /// <summary>The class to explain (0-based), for stages with <see cref="SaliencyTargetKind.LabelColumn"/>.</summary>
    public int Target { get; set; }
}

/// <summary>One row's outputs, handed to the caller while the cursor is positioned on it.</summary>
internal readonly ref struct StageOutput
{
    public StageOutput(ReadOnlySpan<float> map, int predicted, ReadOnlySpan<float> scores, string? error)
    {
        Map = map;
        Predicted = predicted;
        Scores = scores;
        Error = error;
    }

    public ReadOnlySpan<float> Map { get; }
    public int Predicted { get; }
    public ReadOnlySpan<float> Scores { get; }
    public string? Error { get; }
}

/// <summary>
/// One fitted <c>ComputeSaliency</c> stage (one method; target = the prediction, or the row's <c>Target</c> column).
/// Batches of rows stream through it lazily: <see cref="Run"/> wraps them in an <see cref="IDataView"/>, and the stage's
/// cursor computes <c>BatchSize</c> rows per forward/backward pass. Invalid rows are skipped by the stage
/// (<see cref="InvalidRowHandling.Skip"/>: predicted class −1), never thrown.
/// </summary>
internal sealed class SaliencyStage : IDisposable
{
    private const string ErrorColumn = "SaliencyError";
    private readonly MLContext _ml;
    private readonly SchemaDefinition _schema;
    private readonly SaliencyTransformer _transformer;

    private SaliencyStage(MLContext ml, SchemaDefinition schema, SaliencyTransformer transformer, int mapWidth, int mapHeight)
    {
        _ml = ml;
        _schema = schema;
        _transformer = transformer;
        MapWidth = mapWidth;
        MapHeight = mapHeight;
    }

    public int MapWidth { get; }
    public int MapHeight { get; }

    /// <summary>
    /// Maps <see cref="MLImage"/> members to <see cref="ImageDataViewType"/> of unknown size, so that
    /// <c>LoadFromEnumerable</c> takes decoded images of any size. (<c>[ImageType]</c> needs a fixed size: its
    /// parameterless form throws in ML.NET 5.0.) Idempotent.
    /// </summary>
    internal static void RegisterImageType() => DataViewTypeManager.Register(new ImageDataViewType(), typeof(MLImage), (DataViewTypeAttribute?)null);

    public static SaliencyStage Create(MLContext ml, AuditModel model, AuditMethod method, bool byTarget, int batchSize, string device)
    {
        RegisterImageType();
        var schema = SchemaDefinition.Create(typeof(StageRow));
        var options = new SaliencyEstimator.Options
        {
            InputColumnName = nameof(StageRow.Image),
            OutputColumnName = "Saliency",
            Model = model.Module,
            Method = method.ToSaliencyMethod(),
            SaliencyLayer = model.LayerFor(method),
            ContrastLayer = method == AuditMethod.Cebp ? model.ContrastLayer : null,
            ClassifierLayer = method == AuditMethod.Cebp ? model.ClassifierLayer : null,
            ImageWidth = model.Width,
            ImageHeight = model.Height,
            Mean = model.Mean,
            Std = model.Std,
            BatchSize = batchSize,
            Device = device,
            Target = byTarget ? SaliencyTargetKind.LabelColumn : SaliencyTargetKind.Predicted,
            LabelColumnName = byTarget ? nameof(StageRow.Target) : null,
            PredictedLabelColumnName = "PredictedLabel",
            ScoresColumnName = "Scores",
            InvalidRows = InvalidRowHandling.Skip,
        };
        var empty = ml.Data.LoadFromEnumerable(Array.Empty<StageRow>(), schema);
        var transformer = ml.Transforms.ComputeSaliency(options).Fit(empty);
        try
        {
            var output = transformer.GetOutputSchema(empty.Schema);
            var dims = ((VectorDataViewType)output["Saliency"].Type).Dimensions;
            return new SaliencyStage(ml, schema, transformer, dims[^1], dims[^2]);
        }
        catch
        {
            transformer.Dispose();
            throw;
        }
    }

    /// <summary>Runs <paramref name="rows"/> through the stage and calls <paramref name="onRow"/> for each, in order.</summary>
    public void Run(IReadOnlyList<StageRow> rows, RowHandler onRow)
    {
        if (rows.Count == 0) return;
        var input = _ml.Data.LoadFromEnumerable(rows, _schema);
        var view = _transformer.Transform(input);
        var s = view.Schema;
        var wanted = new List<DataViewSchema.Column> { s["Saliency"], s["PredictedLabel"], s["Scores"] };
        var errorColumn = s.GetColumnOrNull(ErrorColumn);
        if (errorColumn is { } ec && ec.Type is TextDataViewType) wanted.Add(ec);
        else errorColumn = null;
        using var cursor = view.GetRowCursor(wanted);
        var mapGetter = cursor.GetGetter<VBuffer<float>>(s["Saliency"]);
        var predictedGetter = cursor.GetGetter<int>(s["PredictedLabel"]);
        var scoresGetter = cursor.GetGetter<VBuffer<float>>(s["Scores"]);
        var errorGetter = errorColumn is { } e ? cursor.GetGetter<ReadOnlyMemory<char>>(e) : null;
        VBuffer<float> map = default, scores = default;
        ReadOnlyMemory<char> error = default;
        int i = 0;
        while (cursor.MoveNext())
        {
            int predicted = 0;
            mapGetter(ref map);
            predictedGetter(ref predicted);
            scoresGetter(ref scores);
            string? message = null;
            if (errorGetter is not null)
            {
                errorGetter(ref error);
                if (!error.IsEmpty) message = error.ToString();
            }
            onRow(i++, new StageOutput(map.DenseValues().ToArray(), predicted, scores.DenseValues().ToArray(), message));
        }
        if (i != rows.Count) throw new InvalidOperationException($"The saliency stage returned {i} rows for {rows.Count}.");
    }

    public delegate void RowHandler(int index, StageOutput output);

    /// <summary>The model input this stage computes for <paramref name="image"/> (planar <c>[C, H, W]</c>).</summary>
    public float[] ModelInput(MLImage image) => _transformer.ModelInput(image);

    public void Dispose() => _transformer.Dispose();
}
