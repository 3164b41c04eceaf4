using Ebp.MLNet.Internal;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Ebp.MLNet;

/// <summary>
/// Adds an Excitation Backprop saliency map column (plus the model's predicted class, scores and an optional overlay
/// image) to image rows. Made by <see cref="SaliencyEstimator.Fit"/> or <see cref="SaliencyModel.Load(MLContext, string, out DataViewSchema?, SaliencyModelLoadOptions?)"/>.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><see cref="Transform"/> is lazy: it checks the schema and returns a view; the model first runs when a cursor
/// moves and a stage column is active. A cursor reads <see cref="BatchSize"/> rows, runs one forward/backward pass for
/// them and serves the rows from that batch; results do not depend on the batch size.</item>
/// <item>Output is never NaN or ∞: a row that cannot be computed either throws (<see cref="InvalidRowHandling.Throw"/>) or,
/// with <see cref="InvalidRowHandling.Skip"/>, gets zeros, −1 classes, a null overlay and its reason in the error column.</item>
/// <item>With <see cref="SaliencyEstimator.Options.TopK"/> = k &gt; 1 each batch runs one forward pass and k backward passes
/// (<see cref="SaliencyExplainer.ExplainEach"/>); the saliency column holds k maps in rank order.</item>
/// <item>The transformer is a row-to-row mapper, so <c>mlContext.Model.CreatePredictionEngine</c> works (one row per
/// pass).</item>
/// <item>Each forward/backward pass rents a model instance from the transformer's pool; more are created on demand
/// with the same weights, so passes of concurrent cursors never share one. A user-supplied
/// <see cref="SaliencyEstimator.Options.Model"/> is the exception: it is shared and calls on it are serialised.</item>
/// <item>Dispose the transformer (or the <c>TransformerChain</c> holding it) to free the models' native memory; it keeps
/// the weights and rebuilds a model if used again (see <see cref="Dispose"/>).</item>
/// <item>Persistence: <c>mlContext.Model.Save</c> cannot store this stage (ML.NET's persistence API is internal to
/// ML.NET) and throws <see cref="NotSupportedException"/>, removing the file it had started; use <see cref="SaliencyModel.Save(MLContext, ITransformer, DataViewSchema?, string)"/>.</item>
/// </list>
/// </remarks>
public sealed class SaliencyTransformer : ITransformer, IDisposable
{
    internal SaliencyTransformer(StageConfig config, ModelPool pool, StageLog? log = null)
    {
        Config = config;
        Pool = pool;
        Log = log ?? StageLog.None;
    }

    internal StageLog Log { get; }

    /// <summary>The class names (class-index order) from the options or the model card, or null.</summary>
    public IReadOnlyList<string>? ClassNames => Config.ClassNames;

    internal StageConfig Config { get; }

    internal ModelPool Pool { get; }

    /// <summary>The image column read.</summary>
    public string InputColumnName => Config.InputColumn;

    /// <summary>The saliency column written.</summary>
    public string OutputColumnName => Config.OutputColumn;

    /// <summary>The predicted-class column, or null.</summary>
    public string? PredictedLabelColumnName => Config.PredictedColumn;

    /// <summary>The scores column, or null.</summary>
    public string? ScoresColumnName => Config.ScoresColumn;

    /// <summary>The overlay column, or null.</summary>
    public string? OverlayColumnName => Config.OverlayColumn;

    /// <summary>The row-error column (<c>""</c> for computed rows, the reason for skipped ones), or null.</summary>
    public string? ErrorColumnName => Config.ErrorColumn;

    /// <summary>Number of top predicted classes mapped per row (1 = one map for the configured target).</summary>
    public int TopK => Config.TopK;

    /// <summary>The top-k classes column, or null (always null when <see cref="TopK"/> is 1).</summary>
    public string? TopKClassesColumnName => Config.HasTopKColumn ? Config.TopKClassesColumn : null;

    /// <summary>The saliency method.</summary>
    public SaliencyMethod Method => Config.Method;

    /// <summary>The saliency layer (<c>""</c> = input).</summary>
    public string SaliencyLayer => Config.SaliencyLayer;

    /// <summary>Rows per forward/backward pass in a cursor.</summary>
    public int BatchSize => Config.BatchSize;

    /// <summary>The model's number of classes (size of the scores column).</summary>
    public int NumClasses => Config.NumClasses;

    /// <summary>Height of the saliency map.</summary>
    public int MapHeight => Config.MapHeight;

    /// <summary>Width of the saliency map.</summary>
    public int MapWidth => Config.MapWidth;

    /// <summary>Model input width.</summary>
    public int ImageWidth => Config.ImageWidth;

    /// <summary>Model input height.</summary>
    public int ImageHeight => Config.ImageHeight;

    /// <summary>True: the transformer maps rows one to one (required by <c>PredictionEngine</c>).</summary>
    public bool IsRowToRowMapper => true;

    /// <summary>The schema after the transform: the input columns plus the stage's columns.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or has the wrong type or size.</exception>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        return Binding.Create(inputSchema, Config).Output;
    }

    /// <summary>Returns a lazy view with the stage's columns; no row is read and the model does not run here.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or has the wrong type or size.</exception>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new SaliencyDataView(this, input, Binding.Create(input.Schema, Config));
    }

    /// <summary>A mapper computing one row at a time, used by <c>PredictionEngine</c>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or has the wrong type or size.</exception>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        return new SaliencyRowMapper(this, Binding.Create(inputSchema, Config));
    }

    /// <summary>Always throws: ML.NET's model persistence is internal to ML.NET.</summary>
    /// <exception cref="NotSupportedException">Always; use <see cref="SaliencyModel.Save(MLContext, ITransformer, DataViewSchema?, string)"/>.</exception>
    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        MLNetSaveGuard.DiscardTarget(ctx);
        throw new NotSupportedException(SaveNotSupportedMessage);
    }

    internal const string SaveNotSupportedMessage =
        "The Ebp saliency stage cannot be saved with MLContext.Model.Save: ML.NET's model persistence (ModelSaveContext, " +
        "LoadableClass) is internal to ML.NET. Save the whole pipeline with Ebp.MLNet.SaliencyModel.Save(mlContext, model, " +
        "inputSchema, path) and load it with SaliencyModel.Load(mlContext, path, out inputSchema); the file holds ML.NET's own " +
        "model for the other stages plus this stage's settings and weights.";

    /// <summary>
    /// Frees the model instances (not a user-supplied <see cref="SaliencyEstimator.Options.Model"/>, which stays the
    /// caller's). The weights are kept in managed memory, so a disposed transformer still works and saves: its next
    /// pass rebuilds one instance. This is deliberate: ML.NET's <c>PredictionEngine</c> disposes the transformer it was
    /// created from (<c>PredictionEngineOptions.OwnsTransformer</c> defaults to true), and the caller usually still
    /// holds it, as with ML.NET's own transformers. Cursors running while it is disposed fail with
    /// <see cref="ObjectDisposedException"/>.
    /// </summary>
    public void Dispose() => Pool.Dispose();
}
