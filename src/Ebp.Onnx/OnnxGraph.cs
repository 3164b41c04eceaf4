using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Onnx;

/// <summary>
/// An imported ONNX graph as a TorchSharp module. Every operator that computes on activations is a child
/// module named after its ONNX node (PyTorch exports: the exporting module's name, such as <c>features.23</c>
/// or <c>layer1.0.conv1</c>), invoked with <c>.call</c>, so Ebp's rules and hooks apply. Shape arithmetic
/// (Shape, Gather, Concat of shapes …) runs as plain tensor code. The module returns the logits, before a
/// final Softmax/LogSoftmax.
/// </summary>
public sealed class OnnxGraph : nn.Module<Tensor, Tensor>, Ebp.Models.IDeclaresInputShape
{
    internal sealed record Step(string Name, string[] Inputs, string Output, Func<Tensor[], Tensor> Run, nn.Module? Module);

    private readonly List<Step> _steps;
    private readonly Dictionary<string, Tensor> _constants;
    private readonly string _input, _output;
    private readonly string[][] _lastUse;

    internal IReadOnlyList<Step> Steps => _steps;

    /// <summary>The file's input shape without the batch dimension (NHWC for TensorFlow exports).</summary>
    public IReadOnlyList<long> SampleShape { get; internal init; } = [];

    internal OnnxGraph(string name, string input, string output, List<Step> steps, Dictionary<string, Tensor> constants,
                       IEnumerable<(string Name, nn.Module Module)> modules) : base(name)
    {
        _input = input;
        _output = output;
        _steps = steps;
        _constants = constants;
        // The last step that reads each value: activations are freed as soon as nothing needs them any more
        // (autograd keeps what the backward pass needs), so peak memory follows the live set, as in a native model.
        _lastUse = new string[steps.Count][];
        var last = new Dictionary<string, int>();
        for (int i = 0; i < steps.Count; i++) foreach (var v in steps[i].Inputs) last[v] = i;
        for (int i = 0; i < steps.Count; i++)
            _lastUse[i] = steps[i].Inputs.Distinct().Where(v => last[v] == i && v != input && v != output && !constants.ContainsKey(v)).ToArray();
        // TorchSharp names may not hold dots: "layer1.0.conv1" becomes layer1 → 0 → conv1, as in PyTorch, so
        // named_modules() and state_dict() show the exporter's names. A module whose name prefixes others
        // (a stage's ScopeOutput) is itself their container.
        var list = modules.ToList();
        var byName = list.ToDictionary(m => m.Name, m => m.Module);
        var placed = new Dictionary<string, nn.Module>();
        nn.Module Place(string fullName)
        {
            if (placed.TryGetValue(fullName, out var done)) return done;
            int dot = fullName.LastIndexOf('.');
            var parent = dot < 0 ? this : Place(fullName[..dot]);
            var module = byName.TryGetValue(fullName, out var m) ? m : new OnnxScope(fullName[(dot + 1)..]);
            parent.register_module(fullName[(dot + 1)..], module);
            return placed[fullName] = module;
        }
        foreach (var (n, _) in list) Place(n);
    }

    /// <summary>Runs the graph on <paramref name="input"/> (the ONNX input's layout) and returns the logits.</summary>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var values = new Dictionary<string, Tensor> { [_input] = input };
        int index = 0;
        foreach (var step in _steps)
        {
            var args = new Tensor[step.Inputs.Length];
            for (int i = 0; i < args.Length; i++)
                args[i] = values.TryGetValue(step.Inputs[i], out var v) ? v : _constants[step.Inputs[i]];
            var produced = step.Run(args);
            values[step.Output] = produced;
            foreach (var done in _lastUse[index])
                if (values.Remove(done, out var t) && !ReferenceEquals(t, produced)) t.Dispose();
            index++;
        }
        var result = values[_output];
        // The graph may be the identity on its input; never hand back the caller's own tensor.
        if (ReferenceEquals(result, input)) result = input.alias();
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>A naming container of the exporter's module hierarchy; it never runs.</summary>
    private sealed class OnnxScope : nn.Module
    {
        public OnnxScope(string name) : base(name) { }
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var t in _constants.Values) t.Dispose();
            _constants.Clear();
        }
        base.Dispose(disposing);
    }
}
