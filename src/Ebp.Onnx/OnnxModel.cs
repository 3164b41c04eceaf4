using System.Text.Json;
using Ebp.Onnx.Internal;
using Ebp.Onnx.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Onnx;

/// <summary>
/// An ONNX image classifier imported as a TorchSharp module that <see cref="SaliencyExplainer"/> explains like
/// Ebp's own models, with what the file says about it.
/// </summary>
/// <example>
/// <code>
/// using var onnx = OnnxModel.Load("resnet50.onnx");
/// var explainer = new SaliencyExplainer(onnx.Module);
/// using var r = explainer.Explain(image, SaliencyTarget.Predicted,
///     new SaliencyOptions { SaliencyLayer = onnx.Suggested.SaliencyLayer });
/// </code>
/// </example>
public sealed class OnnxModel : IDisposable
{
    /// <summary>The imported graph (eval mode). It returns the logits, before a final Softmax/LogSoftmax.</summary>
    public OnnxGraph Module { get; }
    /// <summary>The graph input's name.</summary>
    public string InputName { get; }
    /// <summary>The input shape used at import (the file's, batch 1 where it is open).</summary>
    public IReadOnlyList<long> InputShape { get; }
    /// <summary>The graph output the scores come from (after the head, as ONNX Runtime names it).</summary>
    public string OutputName { get; }
    /// <summary>The value the module returns: the logits before the head.</summary>
    public string LogitsName { get; }
    /// <summary>The recognised head after the logits.</summary>
    public OnnxHead Head { get; }
    /// <summary>Number of classes.</summary>
    public int ClassCount { get; }
    /// <summary>Class names from the metadata (<c>class_names</c>, <c>classes</c> or <c>labels</c>) or a ZipMap; null if absent.</summary>
    public IReadOnlyList<string>? ClassNames { get; }
    /// <summary>The main opset the file imports.</summary>
    public int Opset { get; }
    /// <summary>Layers for saliency, contrast and classifier as TorchRay's benchmark chooses them.</summary>
    public SuggestedLayers Suggested { get; }
    /// <summary>
    /// The external data files the model's tensors were read from, relative to the model's folder ('/' separators);
    /// empty for a self-contained file. Copy these with the <c>.onnx</c> file to move the model.
    /// </summary>
    public IReadOnlyList<string> ExternalDataFiles { get; }

    private OnnxModel(OnnxGraph module, GraphImporter importer, int classes, IReadOnlyList<string>? names, SuggestedLayers suggested,
                      IReadOnlyList<string> external)
    {
        Module = module;
        InputName = importer.InputName;
        InputShape = importer.InputShape;
        OutputName = importer.OutputName;
        LogitsName = importer.LogitsName;
        Head = importer.Head;
        Opset = importer.Opset;
        ClassCount = classes;
        ClassNames = names;
        Suggested = suggested;
        ExternalDataFiles = external;
    }

    /// <summary>The operators the importer builds.</summary>
    public static IReadOnlyList<string> SupportedOperators => GraphImporter.SupportedOps;

    /// <summary>Reads <paramref name="path"/> and builds the module.</summary>
    /// <exception cref="OnnxImportException">The file is unreadable, unsafe, or uses an operator that cannot be built exactly.</exception>
    public static OnnxModel Load(string path, OnnxLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        options ??= new OnnxLoadOptions();
        var file = ModelFile.Read(path, options);
        var importer = new GraphImporter(file);
        var graph = importer.Build(options);
        try
        {
            using var scope = torch.NewDisposeScope();
            long[] logitsShape;
            var shapes = new Dictionary<string, long[]>();
            using (torch.no_grad())
            {
                using var probe = torch.zeros(importer.InputShape);
                // One more forward through the finished module records each step's output shape (and checks it runs).
                logitsShape = ShapesOf(graph, probe, shapes);
            }
            int classes = (int)logitsShape[^1];
            var names = ClassNamesOf(file, importer, classes);
            return new OnnxModel(graph, importer, classes, names, Suggest(graph, shapes), file.ExternalFiles.ToArray());
        }
        catch
        {
            graph.Dispose();
            throw;
        }
    }

    private static long[] ShapesOf(OnnxGraph graph, Tensor probe, Dictionary<string, long[]> shapes)
    {
        var hooks = new List<Action>();
        foreach (var step in graph.Steps)
        {
            if (step.Module is nn.Module<Tensor, Tensor> m)
            {
                var name = step.Name;
                var h = m.register_forward_hook((_, _, o) => { shapes[name] = o.shape; return o; });
                hooks.Add(h.remove);
            }
            else if (step.Module is nn.Module<Tensor, Tensor, Tensor> pair)
            {
                var name = step.Name;
                var h = pair.register_forward_hook((_, _, _, o) => { shapes[name] = o.shape; return o; });
                hooks.Add(h.remove);
            }
        }
        try
        {
            using var output = graph.call(probe);
            return output.shape;
        }
        finally { foreach (var remove in hooks) remove(); }
    }

    private static IReadOnlyList<string>? ClassNamesOf(ModelFile file, GraphImporter importer, int classes)
    {
        foreach (var key in new[] { "class_names", "classes", "labels" })
        {
            var entry = file.Proto.MetadataProps.FirstOrDefault(p => p.Key == key);
            if (entry is null) continue;
            List<string>? names = null;
            try { names = JsonSerializer.Deserialize<List<string>>(entry.Value); }
            catch (JsonException) { names = entry.Value.Split(',').Select(s => s.Trim()).ToList(); }
            if (names is not null && names.Count == classes) return names;
        }
        return importer.ZipMapLabels is { } z && z.Count == classes ? z : null;
    }

    /// <summary>TorchRay's choice, found from the graph's structure and the probe's shapes.</summary>
    private static SuggestedLayers Suggest(OnnxGraph graph, Dictionary<string, long[]> shapes)
    {
        var steps = graph.Steps;
        int classifier = -1, lastConv = -1;
        for (int i = 0; i < steps.Count; i++)
        {
            if (steps[i].Module is Linear or Convolution) classifier = i;
            if (steps[i].Module is Convolution) lastConv = i;
        }
        string? classifierName = classifier >= 0 ? steps[classifier].Name : null;

        // Contrast: the input of the classifier layer, skipping reshapes.
        string? contrast = null;
        if (classifier >= 0)
        {
            var value = steps[classifier].Inputs[0];
            while (true)
            {
                int producer = -1;
                for (int i = 0; i < classifier; i++) if (steps[i].Output == value) producer = i;
                if (producer < 0) break;
                var m = steps[producer].Module;
                if (m is Flatten or OnnxFlatten or OnnxReshape or OnnxSqueeze or OnnxUnsqueeze or Dropout) { value = steps[producer].Inputs[0]; continue; }
                contrast = m is null ? null : steps[producer].Name;
                break;
            }
        }

        // Saliency: the output of the pooling (or the stage) before the last convolution stage.
        string saliency = "";
        if (lastConv >= 0 && shapes.TryGetValue(steps[lastConv].Name, out var lastShape) && lastShape.Length >= 3)
        {
            var final = lastShape.Skip(2).ToArray();
            int first = -1;
            for (int i = 0; i <= lastConv; i++)
                if (steps[i].Module is not null && shapes.TryGetValue(steps[i].Name, out var s) && s.Length == lastShape.Length && s.Skip(2).SequenceEqual(final)) { first = i; break; }
            if (first >= 0)
            {
                var m = steps[first].Module;
                if (m is MaxPool1d or MaxPool2d or MaxPool3d or AvgPool1d or AvgPool2d or AvgPool3d) saliency = steps[first].Name;
                else
                {
                    for (int i = first - 1; i >= 0; i--)
                    {
                        if (steps[i].Module is null || !shapes.TryGetValue(steps[i].Name, out var s) || s.Length < 3) continue;
                        if (LiveAlone(steps, i)) { saliency = steps[i].Name; break; }
                    }
                }
            }
        }
        return new SuggestedLayers(saliency, contrast, classifierName);
    }

    private static bool LiveAlone(IReadOnlyList<OnnxGraph.Step> steps, int at)
    {
        // Activations made before the step (shape arithmetic has no module and does not count).
        var before = new HashSet<string>(steps.Take(at).Where(s => s.Module is not null).Select(s => s.Output));
        var output = steps[at].Output;
        for (int j = at + 1; j < steps.Count; j++)
            foreach (var i in steps[j].Inputs)
                if (i != output && before.Contains(i)) return false;
        return true;
    }

    /// <summary>Disposes the module.</summary>
    public void Dispose() => Module.Dispose();
}
