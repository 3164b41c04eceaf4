namespace Ebp.Rules;

/// <summary>What <see cref="WPlusRule"/> does with a layer's bias.</summary>
public enum BiasHandling
{
    /// <summary>The bias plays no part: <c>Z = layer(x; W⁺)</c>. The reference's choice (TorchRay, the paper).</summary>
    Ignore,

    /// <summary>
    /// The bias is a unit of constant input 1 with weight <c>max(b, 0)</c> (<c>max(−b, 0)</c> in the contrastive pass):
    /// <c>Z = layer(x; W⁺) + b⁺</c>. It takes its share <c>b⁺ ⊘ Z</c> of the signal, which goes no further, so a
    /// one-hot map then sums to less than 1.
    /// </summary>
    Include,
}
