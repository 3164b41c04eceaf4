namespace Ebp.Weights;

/// <summary>
/// Thrown by <see cref="WeightLoader.LoadStateDict"/> when a state dict does not fit a model (and wrapped as the
/// <see cref="Exception.InnerException"/> of the <see cref="InvalidDataException"/> thrown by <see cref="WeightLoader.Load"/>).
/// Nothing was copied into the model. The message lists every offending name; the properties give the same
/// information programmatically.
/// </summary>
public sealed class StateDictMismatchException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    public StateDictMismatchException(
        string message,
        IReadOnlyList<string> missingKeys,
        IReadOnlyList<string> unexpectedKeys,
        IReadOnlyList<string> shapeMismatches,
        IReadOnlyList<string> dtypeMismatches)
        : base(message, "stateDict")
    {
        MissingKeys = missingKeys;
        UnexpectedKeys = unexpectedKeys;
        ShapeMismatches = shapeMismatches;
        DtypeMismatches = dtypeMismatches;
    }

    /// <summary>Model keys absent from the state dict (strict mode only).</summary>
    public IReadOnlyList<string> MissingKeys { get; }

    /// <summary>State-dict keys (prefix stripped) that the model does not have (strict mode only).</summary>
    public IReadOnlyList<string> UnexpectedKeys { get; }

    /// <summary>Keys whose shape differs, as <c>"name: model [..], file [..]"</c>.</summary>
    public IReadOnlyList<string> ShapeMismatches { get; }

    /// <summary>Keys whose element type cannot be converted, as <c>"name: model Float32, file Int64"</c>.</summary>
    public IReadOnlyList<string> DtypeMismatches { get; }
}
