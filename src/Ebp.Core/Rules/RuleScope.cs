using System.Reflection;
using Ebp.Composites;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Rules;

/// <summary>What a <see cref="RuleScope"/> installs on a model.</summary>
internal sealed record ScopeConfig(
    bool UseRules,
    string SaliencyLayer,
    string? ContrastLayer,
    string? ClassifierLayer,
    bool CollectSignals,
    IReadOnlySet<string> PlainGradientLayers,
    bool PlainGradientForUnsupportedLayers)
{
    /// <summary>
    /// How many backward passes each layer above the saliency layer sees in this scope: the number of targets
    /// of a call, or <see cref="int.MaxValue"/> for a session. The contrastive classifier sees twice as many.
    /// Decides whether W⁺ of a large linear layer is streamed per pass or materialised once (<see cref="BlockedLinearRule"/>).
    /// </summary>
    public int BackwardPasses { get; init; } = 1;
}

/// <summary>
/// Installs the saliency machinery on a model for its lifetime and removes all of it on
/// <see cref="Dispose"/>, also after an exception: forward hooks that attach the backward rules, the cut at
/// the saliency layer, the tap at the contrast layer, eval mode and frozen parameters. The user's module
/// objects are not replaced; only hooks are added and then removed, and the training flags and
/// <c>requires_grad</c> flags are restored exactly.
/// </summary>
internal sealed class RuleScope : IDisposable
{
    private readonly nn.Module _model;
    private readonly ScopeConfig _config;
    private readonly List<Action> _removeHooks = new();
    private readonly List<(nn.Module Module, bool Training, int Depth)> _training = new();
    private readonly List<(Parameter Parameter, bool RequiresGrad)> _frozen = new();
    private readonly Dictionary<nn.Module, IExcitationRule> _rules = new(ReferenceEqualityComparer.Instance);
    private readonly List<Tensor> _ownedWeights = new();
    private readonly List<Tensor> _kept = new();
    private bool _disposed;

    // State of the current forward pass.
    private int _callCounter;
    private int _saliencyCall, _contrastCall, _classifierCall;
    private int _contrastCalls;
    private readonly List<Tensor> _saliencyCuts = new();
    private Tensor? _contrastOutput;
    private Dictionary<string, Tensor>? _signalSink;

    public RuleScope(nn.Module model, ScopeConfig config)
    {
        _model = model;
        _config = config;
        try
        {
            Modules = ModelInspection.NamedModules(model);
            FreezeAndEval();
            foreach (var (name, module) in Modules) InstallHook(name, module);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Every submodule by its state_dict-style name, in definition order (the root excluded).</summary>
    public IReadOnlyList<(string Name, nn.Module Module)> Modules { get; }

    /// <summary>When set, the classifier layer's rule uses max(−W, 0) (contrastive pass).</summary>
    public bool NegateClassifier { get; set; }

    public (string Layer, Exception Error)? Failure { get; private set; }

    public void RecordFailure(string layer, Exception ex)
    {
        lock (_removeHooks) Failure ??= (layer, ex);
    }

    /// <summary>Where <see cref="SignalProbe"/>s record, or null to record nothing.</summary>
    public Dictionary<string, Tensor>? SignalSink { get => _signalSink; set => _signalSink = value; }

    public void RecordSignal(string name, Tensor g)
    {
        var sink = _signalSink;
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
    /// scope ends: a model's forward may run in a dispose scope of its own that ends before our backward.
    /// </summary>
    public Tensor Keep(Tensor t)
    {
        t.DetachFromDisposeScope();
        lock (_kept) _kept.Add(t);
        return t;
    }

    /// <summary>Frees the tensors kept for the last call's backward passes (a session's W⁺ stays).</summary>
    public void ReleaseCallTensors()
    {
        lock (_kept)
        {
            foreach (var t in _kept) t.Dispose();
            _kept.Clear();
        }
        _saliencyCuts.Clear();
        _contrastOutput = null;
    }

    /// <summary>Clears the per-forward state; call before each forward pass.</summary>
    public void BeginForward(bool inputIsSaliency)
    {
        _callCounter = 0;
        _saliencyCall = _contrastCall = _classifierCall = 0;
        _contrastCalls = 0;
        _saliencyCuts.Clear();
        _contrastOutput = null;
        SaliencyReached = inputIsSaliency;
    }

    /// <summary>True once the forward pass has passed the saliency layer (rules apply from there on).</summary>
    public bool SaliencyReached { get; private set; }

    /// <summary>The leaf made at the saliency layer's output (its last call), or null if it did not run.</summary>
    public Tensor? SaliencyOutput => _saliencyCuts.Count > 0 ? _saliencyCuts[^1] : null;
    public Tensor? ContrastOutput => _contrastOutput;
    public int ContrastCalls => _contrastCalls;
    public int SaliencyCallIndex => _saliencyCall;
    public int ContrastCallIndex => _contrastCall;
    public int ClassifierCallIndex => _classifierCall;

    private void FreezeAndEval()
    {
        _training.Add((_model, _model.training, 0));
        foreach (var (name, module) in Modules)
            _training.Add((module, module.training, name.Count(c => c == '.') + 1));
        foreach (var (_, p) in _model.named_parameters())
        {
            _frozen.Add((p, p.requires_grad));
            p.requires_grad_(false);
        }
        _model.eval();
    }

    private void InstallHook(string name, nn.Module module)
    {
        var kind = _config.UseRules ? ExcitationComposite.Classify(module) : LayerKind.Gradient;
        if (kind == LayerKind.Unsupported && AllowsPlainGradient(name)) kind = LayerKind.Gradient;

        switch (module)
        {
            case nn.Module<Tensor, Tensor> single:
            {
                var remover = single.register_forward_hook((m, input, output) => OnForward(name, m, kind, input, output));
                _removeHooks.Add(remover.remove);
                break;
            }
            case nn.Module<Tensor, Tensor, Tensor> pair:
            {
                var remover = pair.register_forward_hook((m, a, b, output) => OnForward2(name, kind, a, b, output));
                _removeHooks.Add(remover.remove);
                break;
            }
            default:
                if (kind == LayerKind.Unsupported) InstallUnsupportedGuard(name, module);
                break;
        }
    }

    private bool AllowsPlainGradient(string name)
        => _config.PlainGradientForUnsupportedLayers || _config.PlainGradientLayers.Contains(name);

    /// <summary>Modules with other forward signatures: we cannot see their inputs, only that they ran.</summary>
    private void InstallUnsupportedGuard(string name, nn.Module module)
    {
        var register = module.GetType().GetMethods(BindingFlags.Public | BindingFlags.Instance)
            .FirstOrDefault(m => m.Name == "register_forward_hook"
                                 && m.GetParameters() is { Length: 1 } ps
                                 && ps[0].ParameterType == typeof(Action<nn.Module>));
        if (register is null) return;
        Action<nn.Module> guard = _ =>
        {
            if (SaliencyReached) throw new UnsupportedLayerException(name, module.GetType().Name);
        };
        var remover = register.Invoke(module, new object[] { guard });
        var remove = remover?.GetType().GetMethod("remove");
        if (remover is not null && remove is not null) _removeHooks.Add(() => remove.Invoke(remover, null));
    }

    private Tensor OnForward(string name, nn.Module module, LayerKind kind, Tensor input, Tensor output)
    {
        int call = ++_callCounter;
        if (name == _config.SaliencyLayer) return Cut(call, output);

        var result = output;
        if (input.requires_grad)
        {
            switch (kind)
            {
                case LayerKind.Excitation:
                    result = RuleFor(name, module).Attach(this, name, input, output, isClassifier: name == _config.ClassifierLayer);
                    break;
                case LayerKind.PassThrough:
                    result = PassThroughRule.Attach(this, name, input, output);
                    break;
                case LayerKind.Unsupported:
                    throw new UnsupportedLayerException(name, module.GetType().Name);
            }
        }
        return Tap(name, call, result);
    }

    private Tensor OnForward2(string name, LayerKind kind, Tensor a, Tensor b, Tensor output)
    {
        int call = ++_callCounter;
        if (name == _config.SaliencyLayer) return Cut(call, output);
        var result = output;
        if ((a.requires_grad || b.requires_grad) && kind == LayerKind.ProportionalSum)
            result = ProportionalSumRule.Attach(this, name, a, b, output);
        return Tap(name, call, result);
    }

    /// <summary>
    /// The saliency layer's output becomes a fresh leaf: nothing below it takes part in the backward pass.
    /// A module that runs several times is cut at each call and read at its last one, as a PyTorch hook
    /// that keeps the last output would read it.
    /// </summary>
    private Tensor Cut(int call, Tensor output)
    {
        var leaf = Keep(output.detach().requires_grad_(true));
        _saliencyCuts.Add(leaf);
        _saliencyCall = call;
        SaliencyReached = true;
        var result = leaf.alias(); // containers dispose what flows through them; keep our own handle
        return _config.CollectSignals ? SignalProbe.Attach(this, _config.SaliencyLayer, result) : result;
    }

    private Tensor Tap(string name, int call, Tensor result)
    {
        if (name == _config.ClassifierLayer) _classifierCall = call;
        if (name == _config.ContrastLayer)
        {
            _contrastCalls++;
            _contrastCall = call;
            _contrastOutput = Keep(result);
            result = result.alias();
        }
        if (_config.CollectSignals && result.requires_grad) result = SignalProbe.Attach(this, name, result);
        return result;
    }

    /// <summary>Test seam: replaces the composite's choice of rule for some modules.</summary>
    internal Func<nn.Module, IExcitationRule?>? RuleOverride { get; set; }

    private IExcitationRule RuleFor(string name, nn.Module module)
    {
        lock (_rules)
        {
            if (_rules.TryGetValue(module, out var rule)) return rule;
            // The contrastive classifier runs two backward passes (W⁺ and max(−W, 0)) per target.
            long passes = name == _config.ClassifierLayer ? 2L * _config.BackwardPasses : _config.BackwardPasses;
            return _rules[module] = RuleOverride?.Invoke(module) ?? ExcitationComposite.CreateExcitationRule(module, _ownedWeights, passes);
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var remove in _removeHooks) remove();
        _removeHooks.Clear();
        foreach (var (p, requiresGrad) in _frozen) p.requires_grad_(requiresGrad);
        // train(bool) recurses into children: restore from the root down so that each module ends with its own flag.
        foreach (var (module, training, _) in _training.OrderBy(t => t.Depth)) module.train(training);
        ReleaseCallTensors();
        lock (_ownedWeights)
        {
            foreach (var t in _ownedWeights) t.Dispose();
            _ownedWeights.Clear();
        }
    }
}
