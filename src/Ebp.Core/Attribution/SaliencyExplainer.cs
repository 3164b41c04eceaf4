using System.Runtime.CompilerServices;
using Ebp.Composites;
using Ebp.Rules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp;

/// <summary>
/// Runs Excitation Backprop, contrastive Excitation Backprop or the plain gradient on a TorchSharp model.
/// </summary>
/// <remarks>
/// Each call installs the rules on the model for the duration of the call only (see the README's
/// "How it works"), runs one forward pass, and removes everything again, also when the call fails. The
/// model runs in eval mode with frozen parameters during the call; its training and
/// <c>requires_grad</c> flags are restored afterwards, and its outputs are unchanged. Calls on the same
/// model instance, or on models that share modules (a model and a <c>Sequential</c> wrapping it), are serialised; a
/// call waits up to <see cref="WaitTimeout"/> for an open session. Use one model instance per thread for parallel work, and
/// do not run the model yourself (<c>model.call</c>) on another thread during a call: that call then fails, saying so.
/// <example>
/// <code>
/// using var model = ModelZoo.Create("vgg16");
/// WeightLoader.Load(model, "vgg16.safetensors");
/// var explainer = new SaliencyExplainer(model);
/// using var result = explainer.Explain(image, SaliencyTarget.Class(243),
///     new SaliencyOptions { SaliencyLayer = "features.16", Resize = MapSize.Input });
/// // result.Map: [1, 1, 224, 224]
/// </code>
/// </example>
/// </remarks>
public sealed class SaliencyExplainer
{
    private readonly TimeSpan _waitTimeout = TimeSpan.FromSeconds(30);

    /// <summary>An explainer of <paramref name="model"/>; the model is borrowed (not disposed) and restored after every call.</summary>
    /// <param name="model">The classifier, <c>[B, C, H, W]</c> (or the input its first layer takes) to <c>[B, classes]</c>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="model"/> is null.</exception>
    public SaliencyExplainer(nn.Module<Tensor, Tensor> model)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
    }

    /// <summary>Test seam: called with each scope right after it is installed.</summary>
    internal Action<RuleScope>? ScopeCreated { get; set; }

    /// <summary>The explained model.</summary>
    public nn.Module<Tensor, Tensor> Model { get; }

    /// <summary>
    /// How long a call (or <see cref="OpenSession"/>) waits while an open <see cref="SaliencySession"/> holds this model or
    /// modules it shares, before it fails with a <see cref="TimeoutException"/> naming the session and where it was opened.
    /// 30 seconds by default; <see cref="Timeout.InfiniteTimeSpan"/> waits for ever. Other one-off calls are waited for as
    /// long as they run (they always end). A session that was dropped without <c>Dispose</c> and has been garbage-collected
    /// is not waited for: the next call removes its rules and restores the model.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Not positive and not <see cref="Timeout.InfiniteTimeSpan"/>.</exception>
    public TimeSpan WaitTimeout
    {
        get => _waitTimeout;
        init => _waitTimeout = value > TimeSpan.Zero || value == Timeout.InfiniteTimeSpan ? value
            : throw new ArgumentOutOfRangeException(nameof(WaitTimeout), value,
                "WaitTimeout must be positive (e.g. TimeSpan.FromSeconds(30)), or Timeout.InfiniteTimeSpan to wait for ever.");
    }

    /// <summary>
    /// Computes the saliency map of <paramref name="input"/> <c>[B, C, ...]</c> for <paramref name="target"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Unknown layer names, a layer order that cannot work, an input that does not fit the model or holds NaN/∞, a target that does not fit the output.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A target class outside the model's classes.</exception>
    /// <exception cref="UnsupportedLayerException">A layer without a rule lies in the path.</exception>
    /// <exception cref="EbpRuleException">A rule failed in the backward pass.</exception>
    /// <exception cref="ModelForwardException">The model failed in its forward pass; names the layer.</exception>
    /// <exception cref="CustomAutogradFunctionException">A layer in the path runs an autograd function of your own (see docs/EXTENDING.md).</exception>
    /// <exception cref="TimeoutException">An open session held the model longer than <see cref="WaitTimeout"/>.</exception>
    /// <exception cref="InvalidOperationException">A session is open on the model in this thread, or the model ran outside Ebp
    /// on another thread during the call.</exception>
    public SaliencyResult Explain(Tensor input, SaliencyTarget target, SaliencyOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(target);
        return ExplainEach(input, new[] { target }, options)[0];
    }

    /// <summary>
    /// Computes one map per target from a <b>single</b> forward pass: the activations and each layer's
    /// <c>Z = W⁺x</c> are computed once and reused, so K targets cost about F + Z + K·T instead of
    /// K·(F + Z + T). Use it for several classes of the same images (e.g. every class present, or the
    /// top-k predictions via <see cref="SaliencyTarget.TopK"/>).
    /// </summary>
    /// <returns>One result per target, in order; each result owns its tensors.</returns>
    /// <exception cref="TimeoutException">An open session held the model longer than <see cref="WaitTimeout"/>.</exception>
    /// <exception cref="InvalidOperationException">A session is open on the model in this thread, or the model ran outside Ebp
    /// on another thread during the call.</exception>
    public IReadOnlyList<SaliencyResult> ExplainEach(Tensor input, IReadOnlyList<SaliencyTarget> targets, SaliencyOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(targets);
        if (targets.Count == 0) throw new ArgumentException("At least one target is needed.", nameof(targets));
        if (targets.Any(t => t is null)) throw new ArgumentNullException(nameof(targets), "A target is null.");
        options ??= new SaliencyOptions();
        var config = Validate(options, ModelInspection.NamedModules(Model)) with { BackwardPasses = targets.Count };
        ValidateInput(input);

        // Disposed in reverse order: the rules are removed and the model restored before its modules are given back.
        using var lease = ModelLeases.Acquire(Model, $"an Explain call on thread {Environment.CurrentManagedThreadId}", WaitTimeout);
        using var scope = torch.NewDisposeScope();
        using var rules = new RuleScope(Model, config);
        ScopeCreated?.Invoke(rules);
        return Run(rules, config, options, input, targets);
    }

    /// <summary>
    /// Installs the rules for <paramref name="options"/> once and keeps them until the session is
    /// disposed, so that repeated calls (an audit over many batches) reuse W⁺ = max(W, 0) instead of
    /// recomputing it per call. While the session is open the model stays in eval mode with frozen
    /// parameters, and the model's weights must not change. Other callers of this model (and of models sharing its
    /// modules) wait for it, up to <see cref="WaitTimeout"/>. Dispose the session: one dropped without <c>Dispose</c>
    /// holds the model until the garbage collector has collected it, and the next Ebp call then restores the model.
    /// </summary>
    /// <param name="options">The options of every call of the session.</param>
    /// <param name="callerFile">Filled in by the compiler: where the session is opened, named in the error of a caller that
    /// gives up waiting for it.</param>
    /// <param name="callerLine">Filled in by the compiler (see <paramref name="callerFile"/>).</param>
    /// <param name="callerMember">Filled in by the compiler (see <paramref name="callerFile"/>).</param>
    /// <exception cref="TimeoutException">An open session held the model longer than <see cref="WaitTimeout"/>.</exception>
    /// <exception cref="InvalidOperationException">A session is already open on the model in this thread.</exception>
    public SaliencySession OpenSession(SaliencyOptions? options = null, [CallerFilePath] string callerFile = "",
                                       [CallerLineNumber] int callerLine = 0, [CallerMemberName] string callerMember = "")
    {
        options ??= new SaliencyOptions();
        var config = Validate(options, ModelInspection.NamedModules(Model)) with { BackwardPasses = int.MaxValue };
        var lease = ModelLeases.Acquire(Model,
            $"a SaliencySession opened at {Path.GetFileName(callerFile)}:{callerLine} ({callerMember}) on thread {Environment.CurrentManagedThreadId}",
            WaitTimeout);
        RuleScope? rules = null;
        try
        {
            rules = new RuleScope(Model, config);
            ScopeCreated?.Invoke(rules);
            var session = new SaliencySession(this, rules, config, options, lease);
            // From here the lease marks the model as in a session, which WeightLoader refuses to load into.
            lease.HoldFor(session, rules.Dispose);
            return session;
        }
        catch
        {
            rules?.Dispose();
            lease.Dispose();
            throw;
        }
    }

    internal IReadOnlyList<SaliencyResult> RunInSession(RuleScope rules, ScopeConfig config, SaliencyOptions options,
                                                        Tensor input, IReadOnlyList<SaliencyTarget> targets)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(targets);
        if (targets.Count == 0) throw new ArgumentException("At least one target is needed.", nameof(targets));
        if (targets.Any(t => t is null)) throw new ArgumentNullException(nameof(targets), "A target is null.");
        ValidateInput(input);
        using var scope = torch.NewDisposeScope();
        try
        {
            return Run(rules, config, options, input, targets);
        }
        finally
        {
            rules.ReleaseCallTensors();
        }
    }

    /// <summary>
    /// One call on this thread; a forward pass that met the hooks from another thread meanwhile makes it fail naming
    /// that cause, whatever else went wrong.
    /// </summary>
    private IReadOnlyList<SaliencyResult> Run(RuleScope rules, ScopeConfig config, SaliencyOptions options, Tensor input,
                                              IReadOnlyList<SaliencyTarget> targets)
    {
        IReadOnlyList<SaliencyResult> results;
        rules.Owner.Begin();
        try
        {
            results = RunOwned(rules, config, options, input, targets);
        }
        catch (Exception ex) when (rules.Owner.ForeignThread != 0)
        {
            throw rules.Owner.ForeignForwardError(ex);
        }
        finally
        {
            rules.Owner.End();
        }
        if (rules.Owner.ForeignThread == 0) return results;
        foreach (var r in results) r.Dispose();
        throw rules.Owner.ForeignForwardError(null);
    }

    private IReadOnlyList<SaliencyResult> RunOwned(RuleScope rules, ScopeConfig config, SaliencyOptions options, Tensor input,
                                                   IReadOnlyList<SaliencyTarget> targets)
    {
        var device = Model.parameters().FirstOrDefault()?.device ?? input.device;
        var dtype = Model.parameters().FirstOrDefault()?.dtype ?? ScalarType.Float32;
        var x = input.detach().to(dtype, device);
        bool inputIsSaliency = config.SaliencyLayer.Length == 0;
        if (inputIsSaliency) x = x.detach().requires_grad_(true);

        Tensor output;
        // Where the process has autograd functions of the user's own, one Ebp forward pass at a time, so that the
        // tracker credits no other call's nodes; otherwise passes on separate models run side by side.
        bool gated = CustomFunctions.MayExist();
        if (gated) Monitor.Enter(ForwardTracker.PassGate);
        try
        {
            using (torch.enable_grad())
            {
                rules.BeginForward(inputIsSaliency);
                try
                {
                    output = Model.call(x);
                }
                catch (Exception ex) when (ex is not UnsupportedLayerException and not EbpRuleException and not CustomAutogradFunctionException)
                {
                    var (layer, module) = rules.RunningModule ?? ("", Model);
                    throw new ModelForwardException(input.shape, layer, module.GetType().Name, ex);
                }
            }
        }
        finally
        {
            if (gated) Monitor.Exit(ForwardTracker.PassGate);
        }

        var saliencyPoint = inputIsSaliency ? x : rules.SaliencyOutput
            ?? throw new ArgumentException($"The saliency layer '{config.SaliencyLayer}' did not run in the forward pass. " +
                                           "Hooks fire only for modules invoked with .call(...), not .forward(...).");
        CheckOrder(rules, config, output);
        var seeds = targets.Select(t => t.Build(output.detach())).ToList();

        var results = new List<SaliencyResult>(targets.Count);
        try
        {
            for (int k = 0; k < seeds.Count; k++)
                results.Add(Backward(rules, config, options, input, output, saliencyPoint, seeds[k], last: k == seeds.Count - 1));
        }
        catch
        {
            foreach (var r in results) r.Dispose();
            throw;
        }
        return results;
    }

    private static SaliencyResult Backward(RuleScope rules, ScopeConfig config, SaliencyOptions options, Tensor input,
                                           Tensor output, Tensor saliencyPoint, Tensor seed, bool last)
    {
        Tensor signal;
        Dictionary<string, Tensor>? signals = config.CollectSignals ? new() : null;
        Dictionary<string, Tensor>? contrastSignals = null;
        try
        {
            if (options.Method == SaliencyMethod.ContrastiveExcitationBackprop)
            {
                var contrastPoint = rules.ContrastOutput!;
                if (config.CollectSignals) rules.SignalSink = contrastSignals = new();
                rules.NegateClassifier = true;
                var contrast = Grad(rules, output, contrastPoint, seed, retain: true);
                rules.NegateClassifier = false;
                rules.SignalSink = signals;
                var direct = Grad(rules, output, contrastPoint, seed, retain: true);
                signal = Grad(rules, contrastPoint, saliencyPoint, direct - contrast, retain: !last);
            }
            else
            {
                rules.SignalSink = signals;
                signal = Grad(rules, output, saliencyPoint, seed, retain: !last);
            }

            CheckProbed(config, signals);
            var map = (options.Reduction ?? MapReduction.DefaultFor(options.Method)).Reduce(signal);
            map = PostProcess(map, options, input);
            if (!map.isfinite().all().item<bool>())
                throw new InvalidOperationException(
                    "The saliency map contains NaN or infinity. Check the model's weights and the input scale " +
                    "(Excitation Backprop expects non-negative inputs, e.g. pixels in [0, 1]).");

            var scores = output.detach().clone();
            return new SaliencyResult(map.MoveToOuterDisposeScope(), scores.MoveToOuterDisposeScope(), signals, contrastSignals);
        }
        catch
        {
            DisposeAll(signals);
            DisposeAll(contrastSignals);
            throw;
        }
        finally
        {
            rules.SignalSink = null;
        }
    }

    /// <summary>A named probe layer that recorded nothing lies below the saliency layer or off the path to the output.</summary>
    private static void CheckProbed(ScopeConfig config, Dictionary<string, Tensor>? signals)
    {
        if (config.Probe?.Layers is not { } layers || signals is null) return;
        var missing = layers.Where(l => !signals.ContainsKey(l)).ToList();
        if (missing.Count > 0)
            throw new ArgumentException(
                $"The probe layer{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing.Select(m => $"'{m}'"))} received no signal: " +
                $"a probe reads modules between the saliency layer '{config.SaliencyLayer}' (included) and the output, on the path to the output.");
    }

    private static Tensor Grad(RuleScope rules, Tensor from, Tensor to, Tensor seed, bool retain)
    {
        var g = SafeAutograd.Gradient(from, seed, to, retain);
        if (rules.Failure is { } failure) throw new EbpRuleException(failure.Layer, failure.Error);
        if (g is null || g.IsInvalid)
            throw new ArgumentException("The model output does not depend on the saliency layer's output; choose a layer on the path to the output.");
        return g;
    }

    private static Tensor PostProcess(Tensor map, SaliencyOptions options, Tensor input)
    {
        if (options.Resize is { } size)
        {
            long[] target;
            if (size.IsInput) target = input.shape.Skip(2).ToArray();
            else if (map.dim() == 4) target = new long[] { size.Height, size.Width };
            else throw new ArgumentException($"A width×height resize needs a 2-D map; this map has shape [{string.Join(", ", map.shape)}]. Use MapSize.Input.");
            if (target.Length != map.dim() - 2)
                throw new ArgumentException($"Cannot resize a map of shape [{string.Join(", ", map.shape)}] to the input's size [{string.Join(", ", target)}].");
            map = MapPostProcessing.Resize(map, target, options.ResizeMode);
        }
        if (options.SmoothingSigma is > 0 and var sigma) map = MapPostProcessing.Smooth(map, sigma);
        return map;
    }

    private static void CheckOrder(RuleScope rules, ScopeConfig config, Tensor output)
    {
        if (!output.requires_grad)
            throw new ArgumentException($"The model output does not depend on the saliency layer '{config.SaliencyLayer}'; choose a layer on the path to the output.");
        if (config.ContrastLayer is null) return;
        if (rules.ContrastCalls == 0)
            throw new ArgumentException($"The contrast layer '{config.ContrastLayer}' did not run in the forward pass.");
        if (rules.ContrastCalls > 1)
            throw new ArgumentException($"The contrast layer '{config.ContrastLayer}' runs {rules.ContrastCalls} times in one forward pass; choose a module that runs once.");
        if (!rules.ContrastOutput!.requires_grad || rules.ContrastCallIndex <= rules.SaliencyCallIndex)
            throw new ArgumentException(
                $"The saliency layer '{config.SaliencyLayer}' must lie below the contrast layer '{config.ContrastLayer}' (closer to the input).");
        if (rules.ClassifierCallIndex <= rules.ContrastCallIndex)
            throw new ArgumentException(
                $"The classifier layer '{config.ClassifierLayer}' must lie above the contrast layer '{config.ContrastLayer}' (closer to the output).");
    }

    /// <summary>
    /// libtorch appends its C++ backtrace ("Exception raised from … frame #0: …") to the message; the caller gets
    /// the first part, the whole text stays in the inner exception.
    /// </summary>
    internal static string WithoutNativeBacktrace(string message)
    {
        int cut = message.IndexOf("Exception raised from", StringComparison.Ordinal);
        if (cut < 0) cut = message.IndexOf("\nframe #", StringComparison.Ordinal);
        return (cut < 0 ? message : message[..cut]).TrimEnd();
    }

    private static void DisposeAll(Dictionary<string, Tensor>? tensors)
    {
        if (tensors is null) return;
        foreach (var t in tensors.Values) t.Dispose();
    }

    private ScopeConfig Validate(SaliencyOptions options, IReadOnlyList<(string Name, nn.Module Module)> modules)
    {
        options.CheckRules();
        var names = modules.ToDictionary(m => m.Name, m => m.Module);
        void RequireLayer(string? name, string what)
        {
            if (ModelInspection.UnknownLayerMessage(modules, name, what) is { } problem) throw new ArgumentException(problem);
        }

        if (options.SaliencyLayer is null) throw new ArgumentNullException(nameof(options.SaliencyLayer), "SaliencyLayer is \"\" for the input, or a module name.");
        if (options.SaliencyLayer.Length > 0) RequireLayer(options.SaliencyLayer, "saliency layer");
        foreach (var n in options.PlainGradientLayers) RequireLayer(n, "plain-gradient layer");
        if (options.Composite is { } composite) foreach (var n in composite.NamedLayers) RequireLayer(n, "composite layer");
        if (options.CollectSignals && options.Probe is { Layers: not null })
            throw new ArgumentException("CollectSignals reads every layer, Probe only the layers it names; set one of them.");
        var probe = options.Probe ?? (options.CollectSignals ? SignalProbe.AllLayers : null);
        foreach (var n in probe?.Layers ?? Array.Empty<string>()) RequireLayer(n, "probe layer");

        string? contrast = null, classifier = null;
        if (options.Method == SaliencyMethod.ContrastiveExcitationBackprop)
        {
            contrast = options.ContrastLayer!;
            RequireLayer(contrast, "contrast layer");
            classifier = options.ClassifierLayer ?? ModelInspection.DefaultClassifierLayer(Model)
                ?? throw new ArgumentException("The model has no convolution or linear layer to use as the classifier layer.");
            RequireLayer(classifier, "classifier layer");
            if (names[classifier] is not (Linear or Conv1d or Conv2d or Conv3d))
                throw new ArgumentException($"The classifier layer '{classifier}' is a {names[classifier].GetType().Name}; it must be a convolution or linear layer, whose weights are negated.");
            if (contrast == options.SaliencyLayer)
                throw new ArgumentException($"The saliency layer and the contrast layer are both '{contrast}'; the saliency layer must lie below the contrast layer.");
        }


        return new ScopeConfig(
            UseRules: options.Method is SaliencyMethod.ExcitationBackprop or SaliencyMethod.ContrastiveExcitationBackprop,
            SaliencyLayer: options.SaliencyLayer,
            ContrastLayer: contrast,
            ClassifierLayer: classifier,
            CollectSignals: probe is not null,
            PlainGradientLayers: options.PlainGradientLayers.ToHashSet(),
            PlainGradientForUnsupportedLayers: options.PlainGradientForUnsupportedLayers)
        {
            Composite = options.Composite ?? Composite.ExcitationBackprop,
            Probe = probe,
        };
    }

    private void ValidateInput(Tensor input)
    {
        if (input.IsInvalid) throw new ArgumentException("The input tensor has been disposed.", nameof(input));
        if (!input.is_floating_point())
            throw new ArgumentException($"The input must be a floating-point tensor, got {input.dtype}.", nameof(input));
        if (input.dim() < 2)
            throw new ArgumentException($"The input must be batched, [B, C, ...]; got shape [{string.Join(", ", input.shape)}].", nameof(input));
        if (Model is Models.IDeclaresInputShape declared)
        {
            var sample = declared.SampleShape;
            if (input.dim() != sample.Count + 1 || !input.shape.Skip(1).SequenceEqual(sample))
                throw new ArgumentException(
                    $"The input has shape [{string.Join(", ", input.shape)}], but the model declares its input as " +
                    $"[batch, {string.Join(", ", sample)}]; resize or permute the input to that shape.", nameof(input));
        }
        else if (ModelInspection.FirstWeightedLayer(Model) is Convolution conv)
        {
            long expectedRank = conv.kernel_size.Length + 2;
            if (input.dim() != expectedRank)
                throw new ArgumentException(
                    $"The input has shape [{string.Join(", ", input.shape)}] (rank {input.dim()}), but the model's first layer is a {conv.GetType().Name} " +
                    $"that expects rank {expectedRank}: [batch, {conv.in_channels}, ...].", nameof(input));
            if (input.shape[1] != conv.in_channels)
                throw new ArgumentException(
                    $"The input has {input.shape[1]} channels, but the model's first layer expects {conv.in_channels} " +
                    $"(input shape [{string.Join(", ", input.shape)}]).", nameof(input));
        }
        using (torch.no_grad())
        {
            if (!input.isfinite().all().item<bool>())
                throw new ArgumentException("The input contains NaN or infinity; clean or re-normalise it before computing saliency.", nameof(input));
        }
    }
}
