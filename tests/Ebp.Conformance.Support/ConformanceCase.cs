using System.Text.Json;

namespace Ebp.Conformance;

/// <summary>One entry of a <c>cases.json</c> file (format: shared/reference/README.md, section 2).</summary>
public sealed record ConformanceCase(
    string Name,
    string File,
    JsonElement Model,
    string Method,
    string SaliencyLayer,
    string? ContrastLayer,
    string? ClassifierLayer,
    MapSize? Resize,
    ResizeMode ResizeMode,
    double RtolOfMax,
    long[]? ExpectedShape)
{
    /// <summary>Smoothing sigma as a fraction of the (resized) map's larger side (field <c>smooth</c>, README 5.1), or null.</summary>
    public double? Smooth { get; init; }

    /// <summary>Reads every case of <paramref name="casesJson"/>. Throws with the case name on a malformed entry.</summary>
    public static IReadOnlyList<ConformanceCase> Load(string casesJson)
    {
        using var doc = JsonDocument.Parse(System.IO.File.ReadAllText(casesJson));
        if (doc.RootElement.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"{casesJson}: expected a JSON list of cases.");
        var cases = new List<ConformanceCase>();
        foreach (var c in doc.RootElement.EnumerateArray())
        {
            string name = c.TryGetProperty("name", out var n) ? n.GetString() ?? "?" : "?";
            try { cases.Add(Parse(c)); }
            catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"{casesJson}: case '{name}' is malformed: {ex.Message}", ex);
            }
        }
        return cases;
    }

    private static ConformanceCase Parse(JsonElement c)
    {
        string? OptString(string key) => c.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        MapSize? resize = null;
        if (c.TryGetProperty("resize", out var r))
        {
            if (r.ValueKind == JsonValueKind.True) resize = MapSize.Input;
            else if (r.ValueKind == JsonValueKind.Array) resize = MapSize.Of(r[0].GetInt32(), r[1].GetInt32());
            else if (r.ValueKind != JsonValueKind.False && r.ValueKind != JsonValueKind.Null)
                throw new FormatException($"resize must be false, true or [width, height], got {r}.");
        }
        var mode = OptString("resize_mode") switch
        {
            null or "bilinear" => ResizeMode.Bilinear,
            "nearest" => ResizeMode.Nearest,
            var other => throw new FormatException($"unknown resize_mode '{other}'."),
        };
        double rtol = c.TryGetProperty("tolerance", out var tol) && tol.TryGetProperty("rtol_of_max", out var rt) ? rt.GetDouble() : 1e-4;
        long[]? expectedShape = c.TryGetProperty("expected_shape", out var es) && es.ValueKind == JsonValueKind.Array
            ? es.EnumerateArray().Select(e => e.GetInt64()).ToArray() : null;
        return new ConformanceCase(
            c.GetProperty("name").GetString()!,
            c.GetProperty("file").GetString()!,
            c.GetProperty("model").Clone(),
            c.GetProperty("method").GetString()!,
            OptString("saliency_layer") ?? "",
            OptString("contrast_layer"),
            OptString("classifier_layer"),
            resize, mode, rtol, expectedShape)
        {
            Smooth = c.TryGetProperty("smooth", out var sm) && sm.ValueKind == JsonValueKind.Number ? sm.GetDouble() : null,
        };
    }

    /// <summary>The Ebp method for this case's <c>method</c> string, or null when Ebp does not know it.</summary>
    public SaliencyMethod? SaliencyMethod => Method switch
    {
        "excitation_backprop" => Ebp.SaliencyMethod.ExcitationBackprop,
        "contrastive_excitation_backprop" => Ebp.SaliencyMethod.ContrastiveExcitationBackprop,
        "gradient_sum" => Ebp.SaliencyMethod.GradientSum,
        "gradient" => Ebp.SaliencyMethod.Gradient,
        _ => null,
    };
}
