using System.Runtime.InteropServices;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.MLNet.Internal;

/// <summary>One row's outputs. The arrays are allocated once per cursor slot and overwritten for every batch.</summary>
internal sealed class RowOutput
{
    public RowOutput(StageConfig c)
    {
        Map = new float[c.MapValues];
        Scores = new float[c.NumClasses];
        TopKClasses = new int[c.TopK > 1 ? c.TopK : 0];
    }

    /// <summary><c>[TopK, H, W]</c> row-major (just <c>[H, W]</c> for TopK = 1).</summary>
    public float[] Map { get; }
    public float[] Scores { get; }
    public int Predicted { get; set; }

    /// <summary>The mapped classes in rank order (TopK &gt; 1 only; empty otherwise).</summary>
    public int[] TopKClasses { get; }
    public MLImage? Overlay { get; set; }

    /// <summary>Why the row was skipped; <c>""</c> for a computed row.</summary>
    public string Error { get; set; } = "";

    /// <summary>The outputs of a skipped row: zeros (never NaN), −1 classes, no overlay, and the reason.</summary>
    public void SetSkipped(string reason)
    {
        Array.Clear(Map);
        Array.Clear(Scores);
        Predicted = -1;
        Array.Fill(TopKClasses, -1);
        Overlay = null;
        Error = reason;
    }
}

/// <summary>Runs one forward/backward pass for a batch of rows and spreads the results over the rows.</summary>
/// <remarks>
/// Copies are kept to the minimum: each row's pixels go straight into the input tensor's memory, and each map and score
/// row straight from the result tensors into the row's reusable output arrays (no intermediate batch arrays).
/// </remarks>
internal sealed class BatchComputer
{
    private readonly StageConfig _config;
    private readonly SaliencyOptions _options;
    private readonly IReadOnlyList<SaliencyTarget>? _fixedTargets;
    private readonly bool _overlay;
    private readonly List<int> _valid = new();

    public BatchComputer(StageConfig config, bool overlay)
    {
        _config = config;
        _options = config.ToSaliencyOptions();
        _overlay = overlay;
        _fixedTargets = config.TopK > 1 ? SaliencyTarget.TopK(config.TopK)
            : config.Target switch
            {
                SaliencyTargetKind.FixedClass => [SaliencyTarget.Class(config.TargetClass)],
                SaliencyTargetKind.LabelColumn => null, // per batch
                _ => [SaliencyTarget.Predicted],
            };
    }

    /// <summary>
    /// Computes <paramref name="count"/> rows. Invalid rows throw (<see cref="InvalidRowHandling.Throw"/>) or get
    /// empty outputs with the reason (<see cref="InvalidRowHandling.Skip"/>).
    /// </summary>
    public void Compute(ModelPool.Lease lease, RowInput[] inputs, RowOutput[] outputs, int count)
    {
        var valid = _valid;
        valid.Clear();
        for (int i = 0; i < count; i++)
        {
            if (inputs[i].Error is null) { valid.Add(i); continue; }
            Invalid(inputs[i], outputs[i], inputs[i].Error!, inputs[i].ErrorCause);
        }
        if (valid.Count == 0) return;
        lease.CheckAlive();

        int n = valid.Count, h = _config.ImageHeight, w = _config.ImageWidth, pixels = _config.PixelCount;
        var targets = _fixedTargets ?? [SaliencyTarget.Classes(valid.Select(i => inputs[i].Target).ToArray())];

        using var scope = torch.NewDisposeScope();
        var x = torch.empty(new long[] { n, _config.Channels, h, w }, ScalarType.Float32);
        var xs = Floats(x);
        for (int k = 0; k < n; k++) inputs[valid[k]].Pixels.CopyTo(xs.Slice(k * pixels, pixels));

        IReadOnlyList<SaliencyResult> results;
        try
        {
            results = lease.Explainer.ExplainEach(x, targets, _options);
        }
        catch (Exception e) when (e is not OutOfMemoryException and not ObjectDisposedException)
        {
            throw new InvalidOperationException(
                $"Saliency failed for the batch of rows {inputs[valid[0]].Position}–{inputs[valid[^1]].Position}: {e.Message}", e);
        }
        try
        {
            Spread(inputs, outputs, results, n);
        }
        finally
        {
            foreach (var r in results) r.Dispose();
        }
    }

    private void Spread(RowInput[] inputs, RowOutput[] outputs, IReadOnlyList<SaliencyResult> results, int n)
    {
        int h = _config.ImageHeight, w = _config.ImageWidth, topK = _config.TopK;
        int mapSize = _config.MapHeight * _config.MapWidth, classes = _config.NumClasses;
        var maps = new Tensor[results.Count];
        for (int r = 0; r < results.Count; r++)
        {
            var map = results[r].Map;
            if (map.dim() != 4 || map.shape[0] != n || map.shape[1] != 1 || map.shape[2] != _config.MapHeight || map.shape[3] != _config.MapWidth
                || results[r].Scores.dim() != 2 || results[r].Scores.shape[1] != classes)
                throw new InvalidOperationException(
                    $"The model produced a map of shape [{string.Join(", ", map.shape)}] and scores of shape [{string.Join(", ", results[r].Scores.shape)}]; " +
                    $"the stage's schema expects [{n}, 1, {_config.MapHeight}, {_config.MapWidth}] and [{n}, {classes}].");
            maps[r] = Float32Cpu(map);
        }
        var scores = Float32Cpu(results[0].Scores);
        Tensor? ranked = null;
        if (topK > 1)
        {
            // The engine's own ranking (SaliencyTarget.Ranked), ties to the lower index.
            using var order = Ranking.Descending(results[0].Scores);
            ranked = order.narrow(1, 0, topK).to(ScalarType.Int64).cpu().contiguous();
        }
        Tensor? overlayMaps = null;
        if (_overlay)
            overlayMaps = _config.MapHeight != h || _config.MapWidth != w
                ? Float32Cpu(MapPostProcessing.Resize(results[0].Map, new long[] { h, w }, ResizeMode.Bilinear))
                : maps[0];

        var scoreValues = Floats(scores);
        for (int k = 0; k < n; k++)
        {
            int row = _valid[k];
            var o = outputs[row];
            var rowScores = scoreValues.Slice(k * classes, classes);
            if (!RowReader.AllFinite(rowScores))
            {
                Invalid(inputs[row], o, "the model's scores contain NaN or infinity", null);
                continue;
            }
            rowScores.CopyTo(o.Scores);
            for (int r = 0; r < maps.Length; r++)
                Floats(maps[r]).Slice(k * mapSize, mapSize).CopyTo(o.Map.AsSpan(r * mapSize, mapSize));
            o.Predicted = ArgMax(o.Scores);
            if (ranked is not null)
            {
                var order = MemoryMarshal.Cast<byte, long>(ranked.bytes).Slice(k * topK, topK);
                for (int r = 0; r < topK; r++) o.TopKClasses[r] = checked((int)order[r]);
            }
            o.Overlay = overlayMaps is not null
                ? SaliencyImages.Blend(inputs[row].Display!, Floats(overlayMaps).Slice(k * h * w, h * w), w, h, _config.OverlayAlpha)
                : null;
            o.Error = "";
        }
    }

    /// <summary>A row that cannot be computed: throws, or (Skip) gives it empty outputs and the reason.</summary>
    private void Invalid(RowInput input, RowOutput output, string reason, Exception? cause)
    {
        if (_config.InvalidRows == InvalidRowHandling.Throw)
            throw new InvalidOperationException(
                $"Row {input.Position}: {reason}. Set InvalidRows = InvalidRowHandling.Skip to give such rows empty outputs instead.", cause);
        output.SetSkipped(reason);
    }

    private static Tensor Float32Cpu(Tensor t) => t.detach().to(ScalarType.Float32).cpu().contiguous();

    /// <summary>The values of a contiguous float32 CPU tensor, in place (no copy).</summary>
    private static Span<float> Floats(Tensor t) => MemoryMarshal.Cast<byte, float>(t.bytes);

    private static int ArgMax(float[] v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++) if (v[i] > v[best]) best = i;
        return best;
    }
}
