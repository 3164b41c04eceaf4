using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Ebp.Composites;
using Ebp.MLNet;
using Ebp.Models;
using Ebp.Onnx;
using Ebp.Weights;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.Audit;

/// <summary>
/// The model of an audit with everything the report needs: class names, input size and channels, normalisation and
/// layers, and an identity (hashes of architecture and weights) that ties a resumed run or a shard to the same model.
/// </summary>
internal sealed class AuditModel : IDisposable
{
    /// <summary>The name of the default model's files in the repository's <c>models/</c> folder.</summary>
    public const string DefaultModelName = "cluttered-mnist-vgg";

    private AuditModel(nn.Module<Tensor, Tensor> module) => Module = module;

    /// <summary>The network, weights loaded, eval mode. Shared by all stages of the job (the stage serialises calls).</summary>
    public nn.Module<Tensor, Tensor> Module { get; }

    /// <summary>Where the model came from (for the report).</summary>
    public string Description { get; private set; } = "";

    /// <summary>SHA-256 of the architecture and the weight file: equal identities mean the same model.</summary>
    public string Identity { get; private set; } = "";

    public IReadOnlyList<string> ClassNames { get; private set; } = [];
    public int NumClasses => ClassNames.Count;
    public int Channels { get; private set; }
    public int Width { get; private set; }
    public int Height { get; private set; }
    public float[] Mean { get; private set; } = [];
    public float[] Std { get; private set; } = [];
    public string SaliencyLayer { get; private set; } = "";
    public string? ContrastLayer { get; private set; }

    /// <summary>The gradient method's layer: <see cref="AuditOptions.GradientLayer"/>, else the input ("").</summary>
    public string GradientLayer { get; private set; } = "";

    /// <summary>The layer whose output receives the map of <paramref name="method"/>.</summary>
    public string LayerFor(AuditMethod method) => method == AuditMethod.Gradient ? GradientLayer : SaliencyLayer;
    public string? ClassifierLayer { get; private set; }

    /// <summary>The class index of a label or annotation name: an exact class name, else a 0-based index; −1 if neither.</summary>
    public int ClassIndex(string name)
    {
        for (int i = 0; i < ClassNames.Count; i++)
            if (string.Equals(ClassNames[i], name, StringComparison.Ordinal)) return i;
        if (int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out int k) && k >= 0 && k < ClassNames.Count) return k;
        return -1;
    }

    public void Dispose() => Module.Dispose();

    /// <summary>Builds the model of <paramref name="o"/> (see <see cref="AuditOptions.Model"/>) and checks the layers.</summary>
    /// <exception cref="AuditUsageException">A missing file, an unknown architecture or layer, inconsistent settings.</exception>
    public static AuditModel Load(AuditOptions o)
    {
        string source = o.Model.Trim();
        if (source.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)) return LoadOnnx(o, source);
        ModelCard? card = null;
        string? cardDir = null;
        string? specJson = null;
        string? arch = null;
        string description;
        if (source.Equals("default", StringComparison.OrdinalIgnoreCase))
        {
            var (cardPath, from) = LocateDefaultModel();
            card = LoadCard(cardPath);
            cardDir = Path.GetDirectoryName(cardPath)!;
            description = $"default ({card.Name}, {from})";
            if (from != "embedded") description = $"default ({card.Name}, from the repository's models/ folder)";
        }
        else if (source.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            if (!File.Exists(source)) throw new AuditUsageException($"The model file '{source}' does not exist.");
            var text = File.ReadAllText(source);
            JsonObject? obj;
            try { obj = JsonNode.Parse(text) as JsonObject; }
            catch (JsonException e) { throw new AuditUsageException($"'{source}' is not valid JSON: {e.Message}"); }
            if (obj is null) throw new AuditUsageException($"'{source}' must hold a JSON object (a model card or a model spec).");
            if (obj.ContainsKey("kind"))
            {
                specJson = obj.ToJsonString();
                description = $"spec {Path.GetFileName(source)}";
            }
            else
            {
                card = LoadCard(source);
                cardDir = Path.GetDirectoryName(Path.GetFullPath(source))!;
                description = $"{card.Name} (model card {Path.GetFileName(source)})";
            }
        }
        else
        {
            if (!ModelZoo.Names.Contains(source, StringComparer.OrdinalIgnoreCase))
                throw new AuditUsageException(
                    $"Unknown model '{o.Model}': give 'default', a model card or spec (.json), or an architecture ({string.Join(", ", ModelZoo.Names)}).");
            arch = source.ToLowerInvariant();
            description = $"{arch}";
        }
        if (card is not null) specJson = card.Model.ToJsonString();

        // Class names first: a zoo model's class count may come from them.
        List<string>? names = null;
        if (o.ClassNamesPath is not null)
        {
            if (!File.Exists(o.ClassNamesPath)) throw new AuditUsageException($"The class-names file '{o.ClassNamesPath}' does not exist.");
            names = File.ReadAllLines(o.ClassNamesPath).Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
            if (names.Count == 0) throw new AuditUsageException($"The class-names file '{o.ClassNamesPath}' is empty.");
        }
        else if (card is not null && card.ClassNames.Count > 0)
        {
            names = card.ClassNames;
        }

        string? weights = o.WeightsPath;
        if (weights is null && card is { Weights.Length: > 0 }) weights = Path.Combine(cardDir!, card.Weights);
        if (weights is null)
            throw new AuditUsageException($"The model '{o.Model}' needs a weight file: --weights <file> (safetensors, PyTorch .pth state_dict or TorchSharp format).");
        if (!File.Exists(weights)) throw new AuditUsageException($"The weight file '{weights}' does not exist.");
        string weightsSha = Sha256File(weights);
        if (o.WeightsPath is null && card?.WeightsSha256 is { } expected && !string.Equals(expected, weightsSha, StringComparison.OrdinalIgnoreCase))
            throw new AuditUsageException($"'{weights}' has SHA-256 {weightsSha}, but its model card expects {expected}: the weights and the card do not belong together.");

        nn.Module<Tensor, Tensor> module;
        try
        {
            module = arch is not null ? ModelZoo.Create(arch, o.NumClasses ?? names?.Count ?? 1000) : ModelSpec.Build(specJson!);
        }
        catch (Exception e) when (e is ArgumentException or JsonException)
        {
            throw new AuditUsageException($"The model architecture is invalid: {e.Message}");
        }
        var model = new AuditModel(module);
        try
        {
            try
            {
                WeightLoader.Load(module, weights, strict: true);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new AuditUsageException($"The weights '{weights}' do not fit the model: {e.Message}");
            }
            module.eval();
            model.Configure(o, card, names, description, arch ?? CanonicalJson(specJson!), weightsSha);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// An ONNX classifier (<c>--model file.onnx</c>): imported by <see cref="OnnxModel.Load"/>; its input shape, class names
    /// (metadata) and suggested layers apply unless the options name them. The identity hashes the file and its external data.
    /// </summary>
    private static AuditModel LoadOnnx(AuditOptions o, string source)
    {
        if (!File.Exists(source)) throw new AuditUsageException($"The ONNX model '{source}' does not exist.");
        if (o.WeightsPath is not null)
            throw new AuditUsageException("--weights does not apply to an ONNX model: the .onnx file (and its external data) holds the weights.");
        OnnxModel onnx;
        try
        {
            onnx = OnnxModel.Load(source);
        }
        catch (OnnxImportException e)
        {
            throw new AuditUsageException($"The ONNX model '{source}' cannot be used: {e.Message}");
        }
        var model = new AuditModel(onnx.Module);
        try
        {
            if (onnx.InputShape.Count != 4)
                throw new AuditUsageException($"The ONNX model '{source}' takes input of shape [{string.Join(", ", onnx.InputShape)}]; an image model takes [N, C, H, W].");
            List<string>? names = null;
            if (o.ClassNamesPath is not null)
            {
                if (!File.Exists(o.ClassNamesPath)) throw new AuditUsageException($"The class-names file '{o.ClassNamesPath}' does not exist.");
                names = File.ReadAllLines(o.ClassNamesPath).Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
                if (names.Count == 0) throw new AuditUsageException($"The class-names file '{o.ClassNamesPath}' is empty.");
            }
            names ??= onnx.ClassNames?.ToList();
            var folder = Path.GetDirectoryName(Path.GetFullPath(source))!;
            var hashes = new StringBuilder(Sha256File(source));
            foreach (var f in onnx.ExternalDataFiles) hashes.Append('\n').Append(f).Append(':').Append(Sha256File(Path.Combine(folder, f)));
            model.Configure(o, null, names, $"{Path.GetFileName(source)} (ONNX)", "onnx", Sha256Text(hashes.ToString()),
                            ((int)onnx.InputShape[3], (int)onnx.InputShape[2]), onnx.Suggested);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private void Configure(AuditOptions o, ModelCard? card, List<string>? names, string description, string architecture, string weightsSha,
                           (int Width, int Height)? fileInput = null, SuggestedLayers? suggested = null)
    {
        var modules = ModelInspection.NamedModules(Module);
        var first = modules.FirstOrDefault(m => m.Module is Linear or Convolution).Module;
        if (first is not Conv2d conv)
            throw new AuditUsageException($"The model's first weighted layer is {first?.GetType().Name ?? "missing"}; an image model starts with a Conv2d.");
        Channels = checked((int)conv.in_channels);
        if (card is not null && card.Input.Channels > 0 && card.Input.Channels != Channels)
            throw new AuditUsageException($"The model card says {card.Input.Channels} input channels, but the model's first convolution takes {Channels}.");

        (Width, Height) = o.InputSize ?? fileInput ?? (card is { Input.Width: > 0, Input.Height: > 0 } ? (card.Input.Width, card.Input.Height) : (SaliencyEstimator.Defaults.ImageSize, SaliencyEstimator.Defaults.ImageSize));

        int classes;
        var lastName = ModelInspection.DefaultClassifierLayer(Module);
        if (lastName is not null && modules.First(m => m.Name == lastName).Module is Linear linear)
        {
            classes = checked((int)linear.out_features);
        }
        else
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            classes = (int)Module.call(torch.zeros(1, Channels, Height, Width)).shape[^1];
        }
        if (names is not null && names.Count != classes)
            throw new AuditUsageException($"{names.Count} class names are given, but the model has {classes} classes.");
        ClassNames = names ?? Enumerable.Range(0, classes).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToList();
        if (ClassNames.Distinct(StringComparer.Ordinal).Count() != ClassNames.Count)
            throw new AuditUsageException("The class names are not unique.");

        Mean = PerChannel(o.Mean ?? card?.Input.Normalization?.Mean, 0f, "--mean");
        Std = PerChannel(o.Std ?? card?.Input.Normalization?.Std, 1f, "--std");
        if (Std.Any(s => !(s > 0))) throw new AuditUsageException("--std values must be positive.");

        SaliencyLayer = o.SaliencyLayer ?? card?.Saliency.SaliencyLayer ?? suggested?.SaliencyLayer ?? "";
        ContrastLayer = o.ContrastLayer ?? NullIfEmpty(card?.Saliency.ContrastLayer) ?? NullIfEmpty(suggested?.ContrastLayer);
        ClassifierLayer = o.ClassifierLayer ?? NullIfEmpty(card?.Saliency.ClassifierLayer) ?? NullIfEmpty(suggested?.ClassifierLayer);
        void Require(string? layer, string option)
        {
            if (string.IsNullOrEmpty(layer)) return; // "" is the input
            if (ModelInspection.UnknownLayerMessage(modules, layer, "layer") is { } problem)
                throw new AuditUsageException($"{option}: {problem} Modules: {string.Join(", ", modules.Take(40).Select(m => m.Name))}{(modules.Count > 40 ? ", …" : "")}.");
        }
        Require(SaliencyLayer, "--layer");
        GradientLayer = o.GradientLayer ?? "";
        Require(GradientLayer, "--gradient-layer");
        if (o.Methods.Contains(AuditMethod.Cebp))
        {
            if (string.IsNullOrEmpty(ContrastLayer))
                throw new AuditUsageException("cebp needs a contrast layer: --contrast-layer <module> (e.g. classifier.4 for a VGG).");
            Require(ContrastLayer, "--contrast-layer");
            Require(ClassifierLayer, "--classifier-layer");
        }
        else
        {
            ContrastLayer = null;
            ClassifierLayer = null;
        }

        Description = description;
        Identity = Sha256Text($"arch:{architecture}\nweights:{weightsSha}");
    }

    private float[] PerChannel(float[]? values, float fallback, string option)
    {
        if (values is null) return Enumerable.Repeat(fallback, Channels).ToArray();
        if (values.Length == Channels) return (float[])values.Clone();
        if (values.Length == 1) return Enumerable.Repeat(values[0], Channels).ToArray();
        throw new AuditUsageException($"{option} needs 1 or {Channels} values (the model's input channels), got {values.Length}.");
    }

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    /// <summary>
    /// The default model card: the copy embedded in this assembly (extracted once to a cache folder), else
    /// <c>models/cluttered-mnist-vgg.json</c> in a parent folder of the tool or of the current directory (a repository
    /// checkout whose tool was built before the model existed).
    /// </summary>
    internal static (string CardPath, string From) LocateDefaultModel()
    {
        var asm = typeof(AuditModel).Assembly;
        using (var json = asm.GetManifestResourceStream("Ebp.Audit.DefaultModel.json"))
        using (var weights = asm.GetManifestResourceStream("Ebp.Audit.DefaultModel.safetensors"))
        {
            if (json is not null && weights is not null)
            {
                var jsonBytes = ReadAll(json);
                var weightBytes = ReadAll(weights);
                ModelCard card;
                try { card = ModelCard.Parse(Encoding.UTF8.GetString(jsonBytes), "embedded default model card"); }
                catch (InvalidDataException e) { throw new AuditUsageException(e.Message); }
                var hash = Convert.ToHexStringLower(SHA256.HashData(jsonBytes.Concat(weightBytes).ToArray()))[..16];
                var dir = Path.Combine(Path.GetTempPath(), $"ebp-audit-default-model-{hash}");
                var cardPath = Path.Combine(dir, DefaultModelName + ".json");
                var weightsPath = Path.Combine(dir, card.Weights);
                if (!File.Exists(cardPath) || !File.Exists(weightsPath) || new FileInfo(weightsPath).Length != weightBytes.Length)
                {
                    AtomicFile.Write(weightsPath, s => s.Write(weightBytes));
                    AtomicFile.Write(cardPath, s => s.Write(jsonBytes));
                }
                return (cardPath, "embedded");
            }
        }
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "models", DefaultModelName + ".json");
                if (File.Exists(candidate) && File.Exists(Path.ChangeExtension(candidate, ".safetensors"))) return (candidate, candidate);
            }
        }
        throw new AuditUsageException(
            $"The default model is not embedded in this build and models/{DefaultModelName}.json was not found; " +
            "train it (tools/Ebp.Train) and rebuild, or give --model <card.json | spec.json | architecture>.");
    }

    private static byte[] ReadAll(Stream s)
    {
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    internal static string Sha256File(string path) => ModelCard.Sha256(path);

    internal static string Sha256Text(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    private static string CanonicalJson(string json) => JsonNode.Parse(json)!.ToJsonString();

    /// <summary>
    /// A model card (<see cref="ModelCard"/>, the format tools/Ebp.Train writes, read by Ebp.Core); a card that is
    /// missing or invalid is a usage error naming the file and the reason.
    /// </summary>
    private static ModelCard LoadCard(string path)
    {
        try
        {
            var card = ModelCard.Load(path);
            if (card.Name.Length == 0) card.Name = Path.GetFileNameWithoutExtension(path);
            return card;
        }
        catch (Exception e) when (e is FileNotFoundException or InvalidDataException)
        {
            throw new AuditUsageException(e.Message);
        }
    }
}
