using Ebp.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Audit;

/// <summary>
/// The scores <c>--faithfulness-score</c> offers (<see cref="FaithfulnessScore"/>): the two probabilities, not the
/// unbounded logit, so that every area the report shows lies in [0, 1].
/// </summary>
internal static class FaithfulnessScores
{
    /// <summary>The command-line and report name: <c>softmax</c>, <c>sigmoid</c>.</summary>
    public static string Name(this FaithfulnessScore kind) => kind switch
    {
        FaithfulnessScore.Softmax => "softmax",
        FaithfulnessScore.Sigmoid => "sigmoid",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <exception cref="AuditUsageException">Neither softmax nor sigmoid.</exception>
    public static FaithfulnessScore Parse(string text) => text.Trim().ToLowerInvariant() switch
    {
        "softmax" => FaithfulnessScore.Softmax,
        "sigmoid" => FaithfulnessScore.Sigmoid,
        _ => throw new AuditUsageException($"--faithfulness-score must be softmax (RISE; single-label models) or sigmoid (multi-label models), got '{text}'."),
    };
}

/// <summary>
/// The deletion and insertion areas (<see cref="DeletionInsertion"/>, RISE's baselines: zeros of the model input for
/// deletion, the blurred input for insertion) of the rows of one image, measured on the input the saliency stage fed
/// the model, so that they judge the maps the stage computed.
/// </summary>
internal sealed class FaithfulnessRows
{
    /// <summary>What deleted pixels show: RISE's zeros.</summary>
    public const PerturbationBaseline DeletionBaseline = PerturbationBaseline.Zero;

    /// <summary>What pixels show before they are inserted: RISE's blurred image.</summary>
    public const PerturbationBaseline InsertionBaseline = PerturbationBaseline.Blur;

    private readonly AuditModel _model;
    private readonly DeletionInsertionOptions _options;

    private FaithfulnessRows(AuditModel model, DeletionInsertionOptions options)
    {
        _model = model;
        _options = options;
    }

    /// <summary>The step of <paramref name="o"/>, or null when <see cref="AuditOptions.Faithfulness"/> is off.</summary>
    /// <exception cref="AuditUsageException">More steps than the model input has pixels.</exception>
    public static FaithfulnessRows? Create(AuditOptions o, AuditModel model)
    {
        if (!o.Faithfulness) return null;
        long pixels = (long)model.Width * model.Height;
        if (o.FaithfulnessSteps > pixels)
            throw new AuditUsageException($"--faithfulness-steps {o.FaithfulnessSteps} exceeds the {pixels} pixels of the model's {model.Width}×{model.Height} input; give at most {pixels} (16 is the default).");
        return new FaithfulnessRows(model, new DeletionInsertionOptions
        {
            Steps = o.FaithfulnessSteps,
            DeletionBaseline = DeletionBaseline,
            InsertionBaseline = InsertionBaseline,
            Score = o.FaithfulnessScore,
        });
    }

    /// <summary>
    /// (deletion AUC, insertion AUC) of each (method, class) in <paramref name="rows"/>, whose map (stage map size
    /// <paramref name="mapWidth"/> × <paramref name="mapHeight"/>) is in <paramref name="maps"/>.
    /// </summary>
    /// <param name="input">The model input of the image (<c>SaliencyInputs.ModelInput</c>), planar <c>[C, H, W]</c>.</param>
    public Dictionary<(AuditMethod, int), (double Deletion, double Insertion)> Measure(
        float[] input, IEnumerable<(AuditMethod Method, int Class)> rows, IReadOnlyDictionary<(AuditMethod, int), float[]> maps, int mapWidth, int mapHeight)
    {
        var device = _model.Module.parameters().FirstOrDefault()?.device ?? torch.CPU;
        using var x = torch.tensor(input, new long[] { 1, _model.Channels, _model.Height, _model.Width }, device: device);
        var result = new Dictionary<(AuditMethod, int), (double, double)>();
        foreach (var key in rows)
        {
            var r = DeletionInsertion.Measure(_model.Module, x, maps[key], mapWidth, mapHeight, key.Class, _options);
            result[key] = (r.Deletion.Auc, r.Insertion.Auc);
        }
        return result;
    }
}
