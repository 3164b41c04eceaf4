using Ebp.Modules;
using Ebp.Onnx.Modules;
using Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Onnx.Internal;

/// <summary>
/// Builds an <see cref="OnnxGraph"/> node by node, running every built step once on a probe input of the
/// declared shape: the probe gives the ranks and sizes that some operators need (auto_pad, BatchNorm's
/// rank), checks that the graph runs, and feeds the suggested layers.
/// </summary>
internal sealed partial class GraphImporter
{
    public const int MinOpset = 9;
    public const int MaxOpset = 23;

    public static readonly string[] SupportedOps =
    [
        "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv",
        "Div", "Dropout", "Flatten", "Gather", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish",
        "Identity", "LeakyRelu", "LogSoftmax (final)", "LRN", "MatMul", "MaxPool", "Mul", "Pad", "Relu", "Reshape",
        "Shape", "Sigmoid", "Slice", "Softmax", "Squeeze", "Sub", "Transpose", "Unsqueeze", "ZipMap (final)",
    ];

    private readonly ModelFile _file;
    private readonly GraphProto _graph;
    private readonly int _opset;
    private readonly Naming _naming;
    private readonly Dictionary<string, Tensor> _consts = new();      // initializers, Constant nodes, folded values
    private readonly HashSet<string> _aux = new();                      // shape arithmetic computed at run time
    private readonly Dictionary<string, Tensor> _probe = new();        // probe value of every activation and aux value
    private readonly Dictionary<string, string> _alias = new();        // Identity/Dropout outputs → their input
    private readonly List<OnnxGraph.Step> _steps = new();
    private readonly List<(string, nn.Module)> _modules = new();
    private readonly Dictionary<string, int> _consumers = new();
    private readonly HashSet<string> _skipped = new();                 // nodes folded into another (MatMul + Add)
    private readonly Dictionary<string, int> _producerStep = new();

    public string InputName { get; private set; } = "";
    public long[] InputShape { get; private set; } = [];
    public string LogitsName { get; private set; } = "";
    public string OutputName { get; private set; } = "";
    public OnnxHead Head { get; private set; }
    public IReadOnlyList<string>? ZipMapLabels { get; private set; }
    public int Opset => _opset;

    public GraphImporter(ModelFile file)
    {
        _file = file;
        _graph = file.Proto.Graph;
        var main = file.Proto.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => (int)o.Version).DefaultIfEmpty(-1).Max();
        if (main < MinOpset || main > MaxOpset)
            throw new OnnxImportException($"'{file.Path}' uses ONNX opset {main}; opsets {MinOpset} to {MaxOpset} are supported. Convert it with onnx.version_converter.");
        _opset = main;
        _naming = new Naming(_graph.Node);
    }

    public OnnxGraph Build(OnnxLoadOptions options)
    {
        try
        {
            using (torch.no_grad())
            {
                foreach (var init in _graph.Initializer)
                    _consts[init.Name] = _file.ToTensor(init, $"initializer '{init.Name}'");
                ResolveInput(options);
                ResolveOutput(options);
                foreach (var node in _graph.Node)
                    foreach (var i in node.Input) _consumers[i] = _consumers.GetValueOrDefault(i) + 1;
                _probe[InputName] = torch.zeros(InputShape);

                for (int index = 0; index < _graph.Node.Count; index++)
                {
                    var node = _graph.Node[index];
                    if (_skipped.Contains(node.Name + "#" + index)) continue;
                    if (!IsBeforeHead(node)) continue;
                    BuildNode(node, index);
                }
                if (!_probe.ContainsKey(Resolve(LogitsName)))
                    throw new OnnxImportException($"The graph never computes '{LogitsName}' from its input '{InputName}'.");
                AddScopeOutputs();
                var logits = _probe[Resolve(LogitsName)];
                if (logits.dim() != 2)
                    throw new OnnxImportException($"Output '{LogitsName}' has shape [{string.Join(", ", logits.shape)}]: expected [batch, classes] class scores.");
            }
            var graph = new OnnxGraph("OnnxGraph", InputName, Resolve(LogitsName), _steps, _consts, _modules) { SampleShape = InputShape[1..] };
            graph.eval();
            return graph;
        }
        catch
        {
            foreach (var (_, m) in _modules) m.Dispose();
            foreach (var t in _consts.Values) t.Dispose();
            throw;
        }
        finally
        {
            foreach (var (k, t) in _probe) if (!_consts.ContainsKey(k)) t.Dispose();
        }
    }

    /// <summary>Probe shapes of every step's output (for the suggested layers); valid until the importer ends.</summary>
    public IReadOnlyDictionary<string, long[]> ProbeShapes { get; private set; } = new Dictionary<string, long[]>();

    private readonly HashSet<string> _headNodes = new();

    private bool IsBeforeHead(NodeProto node) => !_headNodes.Contains(node.Name + "|" + string.Join(",", node.Output));

    private void ResolveInput(OnnxLoadOptions options)
    {
        var inits = _graph.Initializer.Select(i => i.Name).ToHashSet();
        var inputs = _graph.Input.Where(i => !inits.Contains(i.Name)).ToList();
        if (inputs.Count != 1)
            throw new OnnxImportException($"The graph has {inputs.Count} inputs ({string.Join(", ", inputs.Select(i => $"'{i.Name}'"))}); an image classifier with exactly one input is expected.");
        var input = inputs[0];
        InputName = input.Name;
        var type = input.Type?.TensorType;
        if (type is null || (TensorProto.Types.DataType)type.ElemType != TensorProto.Types.DataType.Float)
            throw new OnnxImportException($"Input '{input.Name}' is not a float32 tensor; Ebp explains float image inputs.");
        var dims = type.Shape?.Dim.ToList() ?? [];
        if (options.InputShape is { } given && given.Count != dims.Count && dims.Count > 0)
            throw new OnnxImportException($"Schema mismatch for input '{input.Name}': OnnxLoadOptions.InputShape has rank {given.Count}, the file's input has rank {dims.Count}.");
        int rank = dims.Count > 0 ? dims.Count : options.InputShape?.Count ?? 0;
        if (rank == 0) throw new OnnxImportException($"Input '{input.Name}' has no shape; pass OnnxLoadOptions.InputShape.");
        var shape = new long[rank];
        for (int i = 0; i < rank; i++)
        {
            long fileDim = i < dims.Count && dims[i].ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? dims[i].DimValue : -1;
            long wanted = options.InputShape?[i] ?? -1;
            if (fileDim > 0 && wanted > 0 && fileDim != wanted)
                throw new OnnxImportException($"Schema mismatch for input '{input.Name}': dimension {i} is {fileDim} in the file, OnnxLoadOptions.InputShape says {wanted}.");
            shape[i] = fileDim > 0 ? fileDim : wanted > 0 ? wanted : i == 0 ? 1 : -1;
            if (shape[i] <= 0)
                throw new OnnxImportException($"Input '{input.Name}' has a dynamic dimension {i} ('{(i < dims.Count ? dims[i].DimParam : "")}') where a fixed size is required (only the batch dimension may be open); pass OnnxLoadOptions.InputShape, e.g. [1, 3, 224, 224].");
        }
        InputShape = shape;
    }

    private void ResolveOutput(OnnxLoadOptions options)
    {
        var outputs = _graph.Output.Select(o => o.Name).ToList();
        string output;
        if (options.OutputName is { } wanted)
            output = outputs.Contains(wanted) ? wanted : throw new OnnxImportException($"The graph has no output '{wanted}'; its outputs are {string.Join(", ", outputs.Select(o => $"'{o}'"))}.");
        else if (outputs.Count == 1) output = outputs[0];
        else throw new OnnxImportException($"The graph has {outputs.Count} outputs ({string.Join(", ", outputs.Select(o => $"'{o}'"))}); name the class scores with OnnxLoadOptions.OutputName.");
        OutputName = output;
        // Walk back over a final ZipMap, Softmax/LogSoftmax: EBP seeds the scores before them.
        var producer = _graph.Node.Select((n, i) => (n, i)).ToDictionary(p => p.n.Output.Count > 0 ? p.n.Output[0] : $"#{p.i}", p => p.n);
        var current = output;
        while (producer.TryGetValue(current, out var node))
        {
            if (node.OpType == "ZipMap")
            {
                var strings = node.Attribute.FirstOrDefault(a => a.Name == "classlabels_strings");
                var ints = node.Attribute.FirstOrDefault(a => a.Name == "classlabels_int64s");
                ZipMapLabels = strings is not null ? strings.Strings.Select(s => s.ToStringUtf8()).ToList()
                             : ints?.Ints.Select(v => v.ToString()).ToList();
            }
            else if (node.OpType is "Softmax" or "LogSoftmax")
                Head = node.OpType == "Softmax" ? OnnxHead.Softmax : OnnxHead.LogSoftmax;
            else if (node.OpType != "Identity") break;
            _headNodes.Add(node.Name + "|" + string.Join(",", node.Output));
            current = node.Input[0];
        }
        LogitsName = current;
    }

    private string Resolve(string name)
    {
        while (_alias.TryGetValue(name, out var target)) name = target;
        return name;
    }

    private bool IsConst(string name) => _consts.ContainsKey(Resolve(name));
    private bool IsActivation(string name) { var r = Resolve(name); return _probe.ContainsKey(r) && !_aux.Contains(r) && !_consts.ContainsKey(r); }
    private Tensor Const(NodeProto node, int i) => _consts.TryGetValue(Resolve(node.Input[i]), out var t) ? t
        : throw Fail(node, $"input {i} '{node.Input[i]}' must be a constant (an initializer or Constant node), and is not{(HasValue(node.Input[i]) ? "" : ": no initializer or node produces it")}");
    private bool HasValue(string name) { var r = Resolve(name); return _consts.ContainsKey(r) || _probe.ContainsKey(r); }
    private Tensor Probe(string name) => _probe[Resolve(name)];
    private Tensor Value(string name) { var r = Resolve(name); return _consts.TryGetValue(r, out var c) ? c : _probe[r]; }

    private OnnxImportException Fail(NodeProto node, string why)
        => new($"Cannot import node '{node.Name}' (op {node.OpType}, opset {_opset}): {why}.");

    private OnnxImportException Unsupported(NodeProto node, string? why = null)
        => new($"Cannot import node '{node.Name}' (op {(node.Domain is "" or "ai.onnx" ? "" : node.Domain + ".")}{node.OpType}, opset {_opset}): {why ?? "this operator is not supported"}. " +
               $"Supported operators: {string.Join(", ", SupportedOps)}.");

    /// <summary>Adds a step that calls <paramref name="module"/> and records its probe output.</summary>
    private void AddModule(NodeProto node, string name, nn.Module module, string[] inputs, Func<Tensor[], Tensor> run, string? output = null)
    {
        output ??= node.Output[0];
        _modules.Add((name, module));
        AddStep(node, name, inputs, output, run, module);
    }

    private void AddStep(NodeProto node, string name, string[] inputs, string output, Func<Tensor[], Tensor> run, nn.Module? module)
    {
        var resolved = inputs.Select(Resolve).ToArray();
        Tensor probe;
        try { probe = run(resolved.Select(Value).ToArray()); }
        catch (Exception ex) when (ex is not OnnxImportException)
        {
            throw Fail(node, $"it does not run on the input shape [{string.Join(", ", InputShape)}]: {ex.Message}");
        }
        _probe[output] = probe;
        _producerStep[output] = _steps.Count;
        _steps.Add(new OnnxGraph.Step(name, resolved, output, run, module));
    }

    private static Func<Tensor[], Tensor> Call(nn.Module<Tensor, Tensor> m) => a => m.call(a[0]);
}
