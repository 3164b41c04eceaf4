using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Rules;

/// <summary>
/// What one call (one forward pass and its backward passes) leaves behind: the tensors its rules keep, where the
/// saliency and contrast layers were met, the signals probes record, and the first rule failure. A fresh trace
/// begins with every forward pass, so a failure of one call never reaches the next (a session outlives calls).
/// </summary>
internal sealed class CallTrace : IDisposable
{
    private readonly List<Tensor> _kept = new();
    private readonly List<Tensor> _saliencyCuts = new();
    private readonly object _failureLock = new();
    private (string Layer, Exception Error)? _failure;

    public CallTrace(bool inputIsSaliency) => SaliencyReached = inputIsSaliency;

    /// <summary>Counts module calls in forward order, so that layer order can be checked.</summary>
    public int CallCounter { get; set; }
    public int SaliencyCall { get; private set; }
    public int ContrastCall { get; private set; }
    public int ClassifierCall { get; set; }
    public int ContrastCalls { get; private set; }
    public Tensor? ContrastOutput { get; private set; }

    /// <summary>True once the forward pass has passed the saliency layer (rules apply from there on).</summary>
    public bool SaliencyReached { get; private set; }

    /// <summary>The leaf made at the saliency layer's output (its last call), or null if it did not run.</summary>
    public Tensor? SaliencyOutput => _saliencyCuts.Count > 0 ? _saliencyCuts[^1] : null;

    /// <summary>When set, the classifier layer's rule uses max(−W, 0) (contrastive pass).</summary>
    public bool NegateClassifier { get; set; }

    /// <summary>Where <see cref="SignalRecorder"/>s record, or null to record nothing.</summary>
    public Dictionary<string, Tensor>? SignalSink { get; set; }

    public (string Layer, Exception Error)? Failure { get { lock (_failureLock) return _failure; } }

    public void RecordFailure(string layer, Exception ex)
    {
        lock (_failureLock) _failure ??= (layer, ex);
    }

    public void RecordSaliencyCut(int call, Tensor leaf)
    {
        _saliencyCuts.Add(leaf);
        SaliencyCall = call;
        SaliencyReached = true;
    }

    public void RecordContrast(int call, Tensor output)
    {
        ContrastCalls++;
        ContrastCall = call;
        ContrastOutput = output;
    }

    public void RecordSignal(string name, Tensor g)
    {
        var sink = SignalSink;
        if (sink is null) return;
        var copy = g.detach().clone().DetachFromDisposeScope();
        lock (sink)
        {
            if (sink.TryGetValue(name, out var previous))
            {
                // A module that runs more than once: its signals add up, as autograd adds them.
                sink[name] = previous.add(copy, Scalars.One).DetachFromDisposeScope();
                previous.Dispose();
                copy.Dispose();
            }
            else sink[name] = copy;
        }
    }

    /// <summary>
    /// Takes a tensor made during the forward pass out of every dispose scope and keeps it until this
    /// call ends: a model's forward may run in a dispose scope of its own that ends before our backward.
    /// </summary>
    public Tensor Keep(Tensor t)
    {
        t.DetachFromDisposeScope();
        lock (_kept) _kept.Add(t);
        return t;
    }

    /// <summary>Frees the tensors kept for this call's backward passes.</summary>
    public void Dispose()
    {
        lock (_kept)
        {
            foreach (var t in _kept) t.Dispose();
            _kept.Clear();
        }
        _saliencyCuts.Clear();
        ContrastOutput = null;
    }
}
