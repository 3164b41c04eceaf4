namespace Ebp.Weights;

/// <summary>What <see cref="WeightLoader.LoadStateDict"/> / <see cref="WeightLoader.Load"/> did.</summary>
/// <param name="LoadedKeys">Model keys whose values were copied.</param>
/// <param name="MissingKeys">
/// Model keys left unchanged because the source did not have them. In strict mode only BatchNorm
/// <c>num_batches_tracked</c> counters can appear here.
/// </param>
/// <param name="UnexpectedKeys">Source keys (prefix stripped) that were ignored; always empty in strict mode.</param>
public sealed record WeightLoadResult(
    IReadOnlyList<string> LoadedKeys,
    IReadOnlyList<string> MissingKeys,
    IReadOnlyList<string> UnexpectedKeys);
