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
    /// <summary>Which rule goes on which module; Excitation Backprop's own by default.</summary>
    public Composite Composite { get; init; } = Composite.ExcitationBackprop;

    /// <summary>Where signals are recorded (<see cref="SignalProbe"/>); null records none.</summary>
    public SignalProbe? Probe { get; init; }

    /// <summary>Whether the signal at <paramref name="layer"/>'s output is recorded.</summary>
    public bool Reads(string layer) => Probe?.Reads(layer) ?? false;

    /// <summary>
    /// How many backward passes each layer above the saliency layer sees in this scope: the number of targets
    /// of a call, or <see cref="int.MaxValue"/> for a session. The contrastive classifier sees twice as many.
    /// Decides whether W⁺ of a large linear layer is streamed per pass or materialised once (<see cref="BlockedLinearRule"/>).
    /// </summary>
    public int BackwardPasses { get; init; } = 1;
}

/// <summary>
/// The hook set: installs the saliency machinery on a model for its lifetime and removes all of it on
/// <see cref="Dispose"/>, also after an exception: forward hooks that attach the backward rules, the cut at the
/// saliency layer and the tap at the contrast layer, and the rules (with their W⁺) for this scope. The model's
/// state is held by a <see cref="ModelStateGuard"/> (eval mode, frozen parameters, restored exactly) and what one
/// call leaves behind by a <see cref="CallTrace"/>, fresh for every forward pass. The user's module objects are
/// not replaced; only hooks are added and then removed.
/// </summary>
internal sealed class RuleScope : IDisposable
{
    private readonly ScopeConfig _config;
    private readonly List<Action> _removeHooks = new();
    private readonly Dictionary<nn.Module, IExcitationRule> _rules = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<string, LayerRule> _assigned = new();
    private readonly List<Tensor> _ownedWeights = new();
    private ModelStateGuard? _state;
    private CallTrace _trace = new(inputIsSaliency: false);
    private readonly ForwardTracker _tracker = new();
    private readonly bool _rootUnsupported;
    private bool _disposed;

    public RuleScope(nn.Module model, ScopeConfig config)
    {
        _config = config;
        try
        {
            Modules = ModelInspection.NamedModules(model);
            _state = new ModelStateGuard(model, Modules);
            foreach (var (name, module) in Modules) InstallHook(name, module);
            // TorchSharp runs these untyped hooks around the typed ones above: a module is entered before its rule's hook and left after it.
            _rootUnsupported = config.UseRules && !config.PlainGradientForUnsupportedLayers
                               && config.Composite.RuleFor("", model).Kind == LayerKind.Unsupported;
            foreach (var (name, module) in Modules.Prepend(("", model))) InstallTracking(name, module);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Every submodule by its state_dict-style name, in definition order (the root excluded).</summary>
    public IReadOnlyList<(string Name, nn.Module Module)> Modules { get; }

    /// <summary>The thread of the call in progress; the hooks pass other threads' forward passes by (see <see cref="CallOwner"/>).</summary>
    public CallOwner Owner { get; } = new();

    /// <summary>The current call's trace; replaced by <see cref="BeginForward"/>.</summary>
    public CallTrace Trace => _trace;

    /// <summary>When set, the classifier layer's rule uses max(−W, 0) (contrastive pass).</summary>
    public bool NegateClassifier { get => _trace.NegateClassifier; set => _trace.NegateClassifier = value; }

    public (string Layer, Exception Error)? Failure => _trace.Failure;

    public void RecordFailure(string layer, Exception ex) => _trace.RecordFailure(layer, ex);

    /// <summary>Where <see cref="SignalRecorder"/>s record, or null to record nothing.</summary>
    public Dictionary<string, Tensor>? SignalSink { get => _trace.SignalSink; set => _trace.SignalSink = value; }

    public void RecordSignal(string name, Tensor g) => _trace.RecordSignal(name, g);

    /// <summary>Keeps a tensor made during the forward pass until the call ends (see <see cref="CallTrace.Keep"/>).</summary>
    public Tensor Keep(Tensor t) => _trace.Keep(t);

    /// <summary>Frees the tensors kept for the last call's backward passes (a session's W⁺ stays).</summary>
    public void ReleaseCallTensors() => _trace.Dispose();

    /// <summary>Starts a fresh trace (no failure, no signals, no cuts); call before each forward pass.</summary>
    public void BeginForward(bool inputIsSaliency)
    {
        _trace.Dispose();
        _trace = new CallTrace(inputIsSaliency);
        _tracker.Begin();
    }

    /// <summary>The innermost module still running in the forward pass (the one that failed, after a failure), or null.</summary>
    public (string Name, nn.Module Module)? RunningModule => _tracker.Current is { } f ? (f.Name, f.Module) : null;

    /// <summary>True once the forward pass has passed the saliency layer (rules apply from there on).</summary>
    public bool SaliencyReached => _trace.SaliencyReached;

    /// <summary>The leaf made at the saliency layer's output (its last call), or null if it did not run.</summary>
    public Tensor? SaliencyOutput => _trace.SaliencyOutput;
    public Tensor? ContrastOutput => _trace.ContrastOutput;
    public int ContrastCalls => _trace.ContrastCalls;
    public int SaliencyCallIndex => _trace.SaliencyCall;
    public int ContrastCallIndex => _trace.ContrastCall;
    public int ClassifierCallIndex => _trace.ClassifierCall;

    private void InstallHook(string name, nn.Module module)
    {
        var rule = _assigned[name] = _config.UseRules ? _config.Composite.RuleFor(name, module) : LayerRule.Gradient;
        var kind = rule.Kind;
        bool twoInputs = module is nn.Module<Tensor, Tensor, Tensor>;
        if ((kind == LayerKind.ProportionalSum && !twoInputs) || (kind is LayerKind.Excitation or LayerKind.PassThrough && twoInputs)
            || (kind is LayerKind.Excitation or LayerKind.PassThrough or LayerKind.ProportionalSum && !twoInputs && module is not nn.Module<Tensor, Tensor>))
            throw new ArgumentException(
                $"The composite gives layer '{name}' ({module.GetType().Name}) the {rule.Name} rule, " +
                "which needs " + (kind == LayerKind.ProportionalSum ? "a module of two tensors (a sum)." : "a module of one tensor."));
        if (kind == LayerKind.Unsupported && AllowsPlainGradient(name)) kind = LayerKind.Gradient;

        switch (module)
        {
            case nn.Module<Tensor, Tensor> single:
            {
                var remover = single.register_forward_hook((m, input, output) => Owner.IsOwnForward() ? OnForward(name, m, kind, input, output) : output);
                _removeHooks.Add(remover.remove);
                break;
            }
            case nn.Module<Tensor, Tensor, Tensor> pair:
            {
                var remover = pair.register_forward_hook((m, a, b, output) => Owner.IsOwnForward() ? OnForward2(name, m, kind, a, b, output) : output);
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
        var remove = ModuleHooks.Add(module, "register_forward_hook", _ =>
        {
            if (Owner.IsOwnForward() && SaliencyReached) throw new UnsupportedLayerException(name, module.GetType().Name);
        });
        if (remove is not null) _removeHooks.Add(remove);
    }

    /// <summary>
    /// Hooks that keep the stack of running modules (to name a failing layer) and refuse a user's own autograd
    /// function in the path, whose throwing backward TorchSharp cannot survive (see <see cref="ForwardTracker"/>).
    /// </summary>
    private void InstallTracking(string name, nn.Module module)
    {
        if (ModuleHooks.Add(module, "register_forward_pre_hook", _ => { if (Owner.IsOwnForward()) _tracker.Enter(name, module); }) is { } removeEnter)
            _removeHooks.Add(removeEnter);
        if (ModuleHooks.Add(module, "register_forward_hook", _ => { if (Owner.IsOwnForward()) OnLeave(name, module); }) is { } removeLeave)
            _removeHooks.Add(removeLeave);
    }

    private void OnLeave(string name, nn.Module module)
    {
        var frame = _tracker.Leave(module);
        bool isRoot = name.Length == 0;
        if (isRoot && _rootUnsupported && SaliencyReached) throw UnsupportedLayerException.ForModel(module.GetType().Name);
        if (frame?.CustomFunction is { } function && (frame.InPath ?? SaliencyReached) && !AllowsPlainGradient(name))
            throw new CustomAutogradFunctionException(name, module.GetType().Name, function);
    }

    /// <summary>Notes for the tracker whether the module's output lies on the path back to the saliency point.</summary>
    private void MarkPath(bool inPath)
    {
        _tracker.Attribute();
        if (_tracker.Current is { } frame) frame.InPath = inPath;
    }

    private Tensor OnForward(string name, nn.Module module, LayerKind kind, Tensor input, Tensor output)
    {
        int call = ++_trace.CallCounter;
        MarkPath(name != _config.SaliencyLayer && output.requires_grad);
        if (name == _config.SaliencyLayer) return Cut(call, output);

        var result = output;
        // A module with parameters of its own that holds the saliency layer: its input is not on the path, its output is.
        if (kind == LayerKind.Unsupported && (input.requires_grad || output.requires_grad))
            throw new UnsupportedLayerException(name, module.GetType().Name);
        if (input.requires_grad)
        {
            try
            {
                switch (kind)
                {
                    case LayerKind.Excitation:
                        result = RuleFor(name, module).Attach(this, name, input, output, isClassifier: name == _config.ClassifierLayer);
                        break;
                    case LayerKind.PassThrough:
                        result = PassThroughBackward.Attach(this, name, input, output);
                        break;
                }
            }
            catch (Exception ex) when (ex is not EbpRuleException)
            {
                throw new EbpRuleException(name, module.GetType().Name, ex);
            }
        }
        return Tap(name, call, result);
    }

    private Tensor OnForward2(string name, nn.Module module, LayerKind kind, Tensor a, Tensor b, Tensor output)
    {
        int call = ++_trace.CallCounter;
        MarkPath(name != _config.SaliencyLayer && output.requires_grad);
        if (name == _config.SaliencyLayer) return Cut(call, output);
        var result = output;
        bool onPath = a.requires_grad || b.requires_grad;
        if (kind == LayerKind.Unsupported && (onPath || output.requires_grad)) throw new UnsupportedLayerException(name, module.GetType().Name);
        if (onPath && kind == LayerKind.ProportionalSum)
            result = ProportionalSplitBackward.Attach(this, name, a, b, output);
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
        _trace.RecordSaliencyCut(call, leaf);
        var result = leaf.alias(); // containers dispose what flows through them; keep our own handle
        return _config.Reads(_config.SaliencyLayer) ? SignalRecorder.Attach(this, _config.SaliencyLayer, result) : result;
    }

    private Tensor Tap(string name, int call, Tensor result)
    {
        if (name == _config.ClassifierLayer) _trace.ClassifierCall = call;
        if (name == _config.ContrastLayer)
        {
            _trace.RecordContrast(call, Keep(result));
            result = result.alias();
        }
        if (_config.Reads(name) && result.requires_grad) result = SignalRecorder.Attach(this, name, result);
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
            return _rules[module] = RuleOverride?.Invoke(module)
                ?? ExcitationComposite.CreateExcitationRule(module, _ownedWeights, passes, AssignedRule(name) as WPlusRule);
        }
    }

    /// <summary>The rule the composite gave the module called <paramref name="name"/> (read by the autograd side).</summary>
    public LayerRule? AssignedRule(string name) => _assigned.GetValueOrDefault(name);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var remove in _removeHooks) remove();
        _removeHooks.Clear();
        _state?.Dispose();
        _trace.Dispose();
        lock (_ownedWeights)
        {
            foreach (var t in _ownedWeights) t.Dispose();
            _ownedWeights.Clear();
        }
    }
}
