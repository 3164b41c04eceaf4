using Ebp.Rules;
using static TorchSharp.torch;

namespace Ebp;

/// <summary>
/// Saliency rules installed on a model for several calls (see <see cref="SaliencyExplainer.OpenSession"/>).
/// Dispose it to remove the rules and restore the model's mode and flags. Calls from several threads are serialised.
/// </summary>
/// <remarks>
/// A session dropped without <see cref="Dispose"/> keeps its rules on the model until the garbage collector has
/// collected it; the next Ebp call on the model (or a weight load) then restores the model on its own thread. The
/// finaliser itself touches no module: it only wakes the callers waiting for the model.
/// </remarks>
public sealed class SaliencySession : IDisposable
{
    private readonly SaliencyExplainer _explainer;
    private readonly RuleScope _rules;
    private readonly ScopeConfig _config;
    private readonly ModelLeases.Lease _lease;
    // The hooks and the per-call trace are shared by every call of the session: calls from several threads take turns.
    private readonly object _gate = new();
    private bool _disposed;

    internal SaliencySession(SaliencyExplainer explainer, RuleScope rules, ScopeConfig config, SaliencyOptions options, ModelLeases.Lease lease)
    {
        _explainer = explainer;
        _rules = rules;
        _config = config;
        Options = options;
        _lease = lease;
    }

    /// <summary>The options every call of this session uses.</summary>
    public SaliencyOptions Options { get; }

    /// <summary>As <see cref="SaliencyExplainer.Explain"/>, with this session's options.</summary>
    public SaliencyResult Explain(Tensor input, SaliencyTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        return ExplainEach(input, new[] { target })[0];
    }

    /// <summary>As <see cref="SaliencyExplainer.ExplainEach"/>, with this session's options.</summary>
    public IReadOnlyList<SaliencyResult> ExplainEach(Tensor input, IReadOnlyList<SaliencyTarget> targets)
    {
        try
        {
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                return _explainer.RunInSession(_rules, _config, Options, input, targets);
            }
        }
        finally
        {
            // The session must not count as collected while its own call runs: that would restore the model mid-call.
            GC.KeepAlive(this);
        }
    }

    /// <summary>Removes the rules and restores the model; waits for a call in progress on another thread.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _lease.Dispose();
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>Wakes the callers waiting for the model; the next of them restores it (see the remarks).</summary>
    ~SaliencySession() => ModelLeases.Wake();
}
