using System.Collections.Concurrent;
using TorchSharp;

namespace Ebp.Rules;

/// <summary>
/// Long-lived scalar constants. TorchSharp 0.107 reads the handle of a temporary <see cref="Scalar"/>
/// (e.g. the implicit <c>alpha = 1</c> of <c>a + b</c>, or <c>t + 1e-20</c>) and then calls native code
/// without keeping the Scalar alive, so the garbage collector can finalise it mid-call
/// ("Expected false to be true … toDouble" under load). Static instances are never collected.
/// </summary>
internal static class Scalars
{
    private static readonly ConcurrentDictionary<double, Scalar> Constants = new();

    public static readonly Scalar Zero = 0.0.ToScalar();
    public static readonly Scalar Half = 0.5.ToScalar();
    public static readonly Scalar One = 1.0.ToScalar();
    public static readonly Scalar Epsilon = WPlusRule.ReferenceEpsilon.ToScalar();

    /// <summary>A never-collected scalar for a rule's constant (rules' constants are few: one per value in use).</summary>
    public static Scalar Of(double value) => value == WPlusRule.ReferenceEpsilon ? Epsilon : Constants.GetOrAdd(value, v => v.ToScalar());
}
