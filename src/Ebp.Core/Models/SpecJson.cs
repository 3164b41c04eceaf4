using System.Text.Json;

namespace Ebp.Models;

/// <summary>Small validated accessors for the JSON model specs.</summary>
internal static class SpecJson
{
    public static void CheckFields(JsonElement obj, string what, IReadOnlyCollection<string> allowed)
    {
        if (obj.ValueKind != JsonValueKind.Object)
            throw new ArgumentException($"{what} must be a JSON object (got {obj.ValueKind}).");
        foreach (var p in obj.EnumerateObject())
            if (!allowed.Contains(p.Name))
                throw new ArgumentException(
                    $"{what}: unknown field \"{p.Name}\". Allowed fields: {string.Join(", ", allowed)}.");
    }

    public static bool Has(JsonElement obj, string field) =>
        obj.TryGetProperty(field, out var v) && v.ValueKind != JsonValueKind.Null;

    public static JsonElement Required(JsonElement obj, string what, string field)
    {
        if (!obj.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
            throw new ArgumentException($"{what}: missing required field \"{field}\".");
        return v;
    }

    public static string String(JsonElement obj, string what, string field)
    {
        var v = Required(obj, what, field);
        if (v.ValueKind != JsonValueKind.String)
            throw new ArgumentException($"{what}: field \"{field}\" must be a string (got {v.ValueKind}).");
        return v.GetString()!;
    }

    public static long Int(JsonElement obj, string what, string field, long? defaultValue = null, long min = 1)
    {
        if (!Has(obj, field))
        {
            if (defaultValue is long d) return d;
            Required(obj, what, field);
        }
        return AsInt(obj.GetProperty(field), what, field, min);
    }

    public static long AsInt(JsonElement v, string what, string field, long min)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long x))
            throw new ArgumentException($"{what}: field \"{field}\" must be an integer (got {v}).");
        if (x < min)
            throw new ArgumentException($"{what}: field \"{field}\" must be >= {min} (got {x}).");
        return x;
    }

    public static bool Bool(JsonElement obj, string what, string field, bool defaultValue)
    {
        if (!Has(obj, field)) return defaultValue;
        var v = obj.GetProperty(field);
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ArgumentException($"{what}: field \"{field}\" must be true or false (got {v})."),
        };
    }

    public static double Double(JsonElement obj, string what, string field, double defaultValue)
    {
        if (!Has(obj, field)) return defaultValue;
        var v = obj.GetProperty(field);
        if (v.ValueKind != JsonValueKind.Number)
            throw new ArgumentException($"{what}: field \"{field}\" must be a number (got {v}).");
        return v.GetDouble();
    }

    /// <summary>An integer (repeated <paramref name="dims"/> times) or a list of exactly <paramref name="dims"/> integers.</summary>
    public static long[] IntOrList(JsonElement obj, string what, string field, int dims, long[]? defaultValue = null, long min = 1)
    {
        if (!Has(obj, field))
        {
            if (defaultValue is not null) return defaultValue;
            Required(obj, what, field);
        }
        var v = obj.GetProperty(field);
        if (v.ValueKind == JsonValueKind.Number)
        {
            long x = AsInt(v, what, field, min);
            return Enumerable.Repeat(x, dims).ToArray();
        }
        if (v.ValueKind == JsonValueKind.Array)
        {
            if (v.GetArrayLength() != dims)
                throw new ArgumentException(
                    $"{what}: field \"{field}\" must be an integer or a list of {dims} integers (got a list of {v.GetArrayLength()}).");
            return v.EnumerateArray().Select(e => AsInt(e, what, field, min)).ToArray();
        }
        throw new ArgumentException($"{what}: field \"{field}\" must be an integer or a list of {dims} integers (got {v}).");
    }
}
