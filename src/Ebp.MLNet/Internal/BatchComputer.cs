using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.MLNet.Internal;

/// <summary>One row's outputs.</summary>
internal sealed class RowOutput
{
    public RowOutput(StageConfig c)
    {
        Map = new float[c.MapHeight * c.MapWidth];
        Scores = new float[c.NumClasses];
    }

    public float[] Map { get; }
    public float[] Scores { get; }
    public int Predicted { get; set; }
    public MLImage? Overlay { get; set; }

    public void SetEmpty()
    {
        Array.Fill(Map, float.NaN);
        Array.Fill(Scores, float.NaN);
        Predicted = -1;
        Overlay = null;
    }
}

/// <summary>Runs one forward/backward pass for a batch of rows and spreads the results over the rows.</summary>
internal sealed class BatchComputer
{
    private readonly StageConfig _config;
    private readonly SaliencyOptions _options;
    private readonly bool _overlay;

    public BatchComputer(StageConfig config, bool overlay)
    {
        _config = config;
        _options = config.ToSaliencyOptions();
        _overlay = overlay;
    }

    /// <summary>
    /// Computes <paramref name="count"/> rows. Invalid rows throw (<see cref="InvalidRowHandling.Throw"/>) or get
    /// empty outputs (<see cref="InvalidRowHandling.Skip"/>).
    /// </summary>
    public void Compute(ModelPool.Lease lease, RowInput[] inputs, RowOutput[] outputs, int count)
    {
        var valid = new List<int>(count);
        for (int i = 0; i < count; i++)
        {
            if (inputs[i].Error is null) { valid.Add(i); continue; }
            if (_config.InvalidRows == InvalidRowHandling.Throw)
                throw new InvalidOperationException(
                    $"Row {inputs[i].Position}: {inputs[i].Error}. Set InvalidRows = InvalidRowHandling.Skip to give such rows empty outputs instead.",
                    inputs[i].ErrorCause);
            outputs[i].SetEmpty();
        }
        if (valid.Count == 0) return;
        lease.CheckAlive();

        int n = valid.Count, h = _config.ImageHeight, w = _config.ImageWidth, pixels = _config.PixelCount;
        var data = new float[(long)n * pixels];
        for (int k = 0; k < n; k++) inputs[valid[k]].Pixels.CopyTo(data, (long)k * pixels);

        var target = _config.Target switch
        {
            SaliencyTargetKind.FixedClass => SaliencyTarget.Class(_config.TargetClass),
            SaliencyTargetKind.LabelColumn => SaliencyTarget.Classes(valid.Select(i => inputs[i].Target).ToArray()),
            _ => SaliencyTarget.Predicted,
        };

        float[] maps, scores, overlayMaps;
        using (var scope = torch.NewDisposeScope())
        {
            var x = torch.tensor(data, new long[] { n, 3, h, w });
            SaliencyResult result;
            try
            {
                result = lease.Explainer.Explain(x, target, _options);
            }
            catch (Exception e) when (e is not OutOfMemoryException and not ObjectDisposedException)
            {
                throw new InvalidOperationException(
                    $"Saliency failed for the batch of rows {inputs[valid[0]].Position}–{inputs[valid[^1]].Position}: {e.Message}", e);
            }
            using (result)
            {
                var map = result.Map;
                if (map.dim() != 4 || map.shape[2] != _config.MapHeight || map.shape[3] != _config.MapWidth || result.Scores.shape[1] != _config.NumClasses)
                    throw new InvalidOperationException(
                        $"The model produced a map of shape [{string.Join(", ", map.shape)}] and scores of shape [{string.Join(", ", result.Scores.shape)}]; " +
                        $"the stage's schema expects [{n}, 1, {_config.MapHeight}, {_config.MapWidth}] and [{n}, {_config.NumClasses}].");
                maps = map.to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
                scores = result.Scores.to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
                overlayMaps = maps;
                if (_overlay && (_config.MapHeight != h || _config.MapWidth != w))
                {
                    using var up = MapPostProcessing.Resize(map, new long[] { h, w }, ResizeMode.Bilinear);
                    overlayMaps = up.to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
                }
            }
        }

        int mapSize = _config.MapHeight * _config.MapWidth, classes = _config.NumClasses;
        for (int k = 0; k < n; k++)
        {
            var o = outputs[valid[k]];
            Array.Copy(maps, (long)k * mapSize, o.Map, 0, mapSize);
            Array.Copy(scores, (long)k * classes, o.Scores, 0, classes);
            o.Predicted = ArgMax(o.Scores);
            o.Overlay = _overlay
                ? SaliencyImages.Blend(inputs[valid[k]].Display!, overlayMaps.AsSpan(k * h * w, h * w), w, h, _config.OverlayAlpha)
                : null;
        }
    }

    private static int ArgMax(float[] v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++) if (v[i] > v[best]) best = i;
        return best;
    }
}
