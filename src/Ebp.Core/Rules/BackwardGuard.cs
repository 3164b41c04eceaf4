using static TorchSharp.torch;

namespace Ebp.Rules;

/// <summary>
/// Runs a rule's backward computation so that no exception crosses into native code (which would abort
/// the process): a failure is recorded on the scope and zero gradients are returned instead.
/// </summary>
internal static class BackwardGuard
{
    public static List<Tensor> Run(RuleScope scope, string layerName, Func<List<Tensor>> backward, Func<List<Tensor>> zeros)
    {
        try
        {
            if (scope.Failure is not null) return zeros();
            return backward();
        }
        catch (Exception ex)
        {
            scope.RecordFailure(layerName, ex);
            try { return zeros(); }
            catch { return new List<Tensor>(); }
        }
    }
}
