using Ebp.Models;
using Ebp.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Conformance;

/// <summary>The outcome of one case.</summary>
/// <param name="Map">The computed map (caller disposes), or null when the case could not run.</param>
/// <param name="RelativeError">max|a − e| / max|e|, when the file holds <c>expected</c> and shapes match.</param>
public sealed record CaseOutcome(string Name, Tensor? Map, bool HasExpected, bool Passed, double? RelativeError, string? Error)
{
    public bool Unsupported { get; init; }
}

/// <summary>Runs reference cases through the Ebp engine and compares them with their expected maps.</summary>
public static class CaseRunner
{
    /// <summary>Runs one case whose files live in <paramref name="folder"/>. Never throws for a case's own failure.</summary>
    /// <param name="inSession">Run it through <see cref="SaliencyExplainer.OpenSession"/> (rules and W⁺ kept for the
    /// session) instead of a one-off <see cref="SaliencyExplainer.Explain"/> call.</param>
    public static CaseOutcome Run(ConformanceCase c, string folder, bool inSession = false)
    {
        if (c.SaliencyMethod is not { } method)
            return new CaseOutcome(c.Name, null, false, false, null, $"unknown method '{c.Method}'") { Unsupported = true };

        Dictionary<string, Tensor>? tensors = null;
        nn.Module<Tensor, Tensor>? model = null;
        try
        {
            using var scope = torch.NewDisposeScope();
            tensors = WeightLoader.ReadSafetensors(Path.Combine(folder, c.File));
            try { model = ModelSpec.Build(c.Model); }
            catch (ArgumentException ex)
            {
                return new CaseOutcome(c.Name, null, false, false, null, $"unsupported model: {ex.Message}") { Unsupported = true };
            }
            WeightLoader.LoadStateDict(model, tensors, prefix: "model.", strict: true);

            var input = tensors.TryGetValue("input", out var i) ? i : throw new InvalidDataException("the file has no 'input' tensor");
            SaliencyTarget target = tensors.TryGetValue("target_gradient", out var tg)
                ? SaliencyTarget.Seed(tg)
                : tensors.TryGetValue("target", out var t)
                    ? SaliencyTarget.Classes(t.to(ScalarType.Int64).data<long>().Select(v => checked((int)v)).ToArray())
                    : throw new InvalidDataException("the file has neither 'target' nor 'target_gradient'");

            var options = new SaliencyOptions
            {
                Method = method,
                SaliencyLayer = c.SaliencyLayer,
                ContrastLayer = method == Ebp.SaliencyMethod.ContrastiveExcitationBackprop ? c.ContrastLayer : null,
                ClassifierLayer = method == Ebp.SaliencyMethod.ContrastiveExcitationBackprop ? c.ClassifierLayer : null,
                Resize = c.Resize,
                ResizeMode = c.ResizeMode,
                SmoothingSigma = c.Smooth,
            };
            var explainer = new SaliencyExplainer(model);
            SaliencyResult Compute()
            {
                if (!inSession) return explainer.Explain(input, target, options);
                using var session = explainer.OpenSession(options);
                return session.Explain(input, target);
            }
            using var result = Compute();
            var map = result.Map.detach().to(ScalarType.Float32).cpu().clone();

            if (!tensors.TryGetValue("expected", out var expected))
                return new CaseOutcome(c.Name, map.MoveToOuterDisposeScope(), false, true, null, null);

            var wantShape = c.ExpectedShape ?? expected.shape;
            if (!map.shape.SequenceEqual(wantShape) || !expected.shape.SequenceEqual(wantShape))
                return new CaseOutcome(c.Name, map.MoveToOuterDisposeScope(), true, false, null,
                    $"shape [{string.Join(", ", map.shape)}], expected [{string.Join(", ", wantShape)}]");
            if (!map.isfinite().all().item<bool>())
                return new CaseOutcome(c.Name, map.MoveToOuterDisposeScope(), true, false, null, "the map contains NaN or infinity");

            double err = RelativeError(map, expected);
            bool ok = err <= c.RtolOfMax;
            return new CaseOutcome(c.Name, map.MoveToOuterDisposeScope(), true, ok, err,
                ok ? null : $"max|a-e|/max|e| = {err:E3} > {c.RtolOfMax:E1}");
        }
        catch (Exception ex)
        {
            return new CaseOutcome(c.Name, null, false, false, null, $"{ex.GetType().Name}: {ex.Message}");
        }
        finally
        {
            if (tensors is not null) foreach (var v in tensors.Values) v.Dispose();
            model?.Dispose();
        }
    }

    /// <summary>The reference's criterion: max|a − e| / max|e| over the whole tensor.</summary>
    public static double RelativeError(Tensor actual, Tensor expected)
    {
        using var scope = torch.NewDisposeScope();
        var a = actual.to(ScalarType.Float64);
        var e = expected.to(ScalarType.Float64);
        double scale = e.abs().max().item<double>();
        double diff = (a - e).abs().max().item<double>();
        return scale == 0 ? diff : diff / scale;
    }
}
