using System.IO.Compression;
using System.Text.Json;
using Ebp.MLNet.Internal;
using Ebp.Visualization;
using Ebp.Weights;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ebp.MLNet;

/// <summary>Options of <see cref="SaliencyModel.Load(MLContext, string, out DataViewSchema?, SaliencyModelLoadOptions?)"/>.</summary>
public sealed class SaliencyModelLoadOptions
{
    /// <summary>
    /// Rebuilds the architecture of a stage that was made with <see cref="SaliencyEstimator.Options.ModelFactory"/> or
    /// <see cref="SaliencyEstimator.Options.Model"/> (the file holds its weights, not its code). Stages made from a
    /// zoo architecture or a model spec need nothing. Default null.
    /// </summary>
    public Func<nn.Module<Tensor, Tensor>>? ModelFactory { get; set; }

    /// <summary>Device for the loaded stages (e.g. <c>"cpu"</c> for a model saved on a GPU). Default null: the saved device.</summary>
    public string? Device { get; set; }

    /// <summary>Rows per forward/backward pass for the loaded stages. Default null: the saved value.</summary>
    public int? BatchSize { get; set; }
}

/// <summary>
/// Saves and loads ML.NET pipelines that contain saliency stages, weights included.
/// </summary>
/// <remarks>
/// <para>
/// ML.NET's own persistence (<c>mlContext.Model.Save</c>) needs <c>ModelSaveContext</c> and <c>LoadableClass</c>
/// registration, which are internal to ML.NET, so it cannot store a <see cref="SaliencyTransformer"/> (it throws
/// <see cref="NotSupportedException"/> naming this class). <see cref="Save(MLContext, ITransformer, DataViewSchema?, string)"/>
/// instead writes one zip file:
/// </para>
/// <list type="bullet">
/// <item><c>ebp-pipeline.json</c>: the stage list.</item>
/// <item><c>stages/N.mlnet.zip</c>: each run of ordinary ML.NET transformers (e.g. LoadImages → ResizeImages →
/// ExtractPixels), saved by <c>mlContext.Model.Save</c> itself; <c>input-schema.mlnet.zip</c>: the pipeline's input
/// schema, as an empty ML.NET model.</item>
/// <item><c>stages/N.saliency.json</c> and <c>stages/N.weights.safetensors</c>: each saliency stage's settings
/// and its model's <c>state_dict</c>; <c>stages/N.onnx/…</c>: for a stage made from an ONNX model, the <c>.onnx</c>
/// file and its external data files (the graph), so the saved pipeline needs no file beside it.</item>
/// </list>
/// <para>
/// <see cref="Load(MLContext, string, out DataViewSchema?, SaliencyModelLoadOptions?)"/> rebuilds the same chain (a
/// <c>TransformerChain&lt;ITransformer&gt;</c>, or the bare transformer if that is what was saved). Transformer scopes of
/// nested chains are not kept. The loaded object owns model instances: dispose it.
/// </para>
/// </remarks>
public static class SaliencyModel
{
    private const string ManifestEntry = "ebp-pipeline.json";
    private const string InputSchemaEntry = "input-schema.mlnet.zip";
    private const string FormatName = "Ebp.MLNet.SaliencyModel";
    private const int FormatVersion = 1;

    /// <summary>Saves <paramref name="model"/> (a pipeline or a single transformer) to a zip file.</summary>
    /// <param name="mlContext">The ML.NET context (used to save the ML.NET stages).</param>
    /// <param name="model">The transformer; a <c>TransformerChain</c> is flattened.</param>
    /// <param name="inputSchema">The pipeline's input schema (as for <c>mlContext.Model.Save</c>), or null.</param>
    /// <param name="path">The file to write (replaced if it exists).</param>
    /// <exception cref="NotSupportedException">A non-saliency stage that ML.NET cannot save (the message names it).</exception>
    public static void Save(MLContext mlContext, ITransformer model, DataViewSchema? inputSchema, string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        AtomicFile.Write(path, file => Save(mlContext, model, inputSchema, file));
    }

    /// <summary>Saves <paramref name="model"/> to a stream (see <see cref="Save(MLContext, ITransformer, DataViewSchema?, string)"/>).</summary>
    public static void Save(MLContext mlContext, ITransformer model, DataViewSchema? inputSchema, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(stream);

        var stages = Flatten(model).ToList();
        var manifestStages = new List<ManifestStage?>();
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);

        if (inputSchema is not null)
        {
            var bytes = SaveMLNet(mlContext, new TransformerChain<ITransformer>(), inputSchema, "the input schema");
            Write(zip, InputSchemaEntry, bytes);
        }

        int index = 0;
        var run = new List<ITransformer>();
        void FlushRun()
        {
            if (run.Count == 0) return;
            string entry = $"stages/{index}.mlnet.zip";
            var bytes = SaveMLNet(mlContext, new TransformerChain<ITransformer>(run.ToArray()), null,
                                  string.Join(" → ", run.Select(t => t.GetType().Name)));
            Write(zip, entry, bytes);
            manifestStages.Add(new ManifestStage("mlnet", Entry: entry, Count: run.Count));
            index++;
            run.Clear();
        }

        foreach (var stage in stages)
        {
            if (stage is not SaliencyTransformer saliency)
            {
                run.Add(stage);
                continue;
            }
            FlushRun();
            string settings = $"stages/{index}.saliency.json", weights = $"stages/{index}.weights.safetensors";
            Write(zip, settings, System.Text.Encoding.UTF8.GetBytes(saliency.Config.ToJson()));
            Write(zip, weights, saliency.Pool.SerializeWeights());
            List<string?>? names = null;
            if (saliency.Config.Onnx is { } onnx)
            {
                // The graph is data: the .onnx file and its external data go into the zip under their relative names.
                names = [];
                foreach (var (name, bytes) in onnx.Files)
                {
                    Write(zip, $"stages/{index}.onnx/{name}", bytes);
                    names.Add(name);
                }
            }
            manifestStages.Add(new ManifestStage("saliency", Settings: settings, Weights: weights, OnnxFiles: names));
            index++;
        }
        FlushRun();

        var manifest = new PipelineManifest(FormatName, FormatVersion, model is SaliencyTransformer, manifestStages);
        Write(zip, ManifestEntry, JsonSerializer.SerializeToUtf8Bytes(manifest, PersistenceJsonContext.Default.PipelineManifest));
    }

    /// <summary>Loads a pipeline saved by <see cref="Save(MLContext, ITransformer, DataViewSchema?, string)"/>.</summary>
    /// <param name="mlContext">The ML.NET context.</param>
    /// <param name="path">The file.</param>
    /// <param name="inputSchema">The saved input schema, or null if none was saved.</param>
    /// <param name="options">Model factory, device and batch-size overrides; null for none.</param>
    /// <returns>A <c>TransformerChain&lt;ITransformer&gt;</c>, or a <see cref="SaliencyTransformer"/> if one was saved alone. Dispose it.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a saved saliency pipeline, or is damaged.</exception>
    public static ITransformer Load(MLContext mlContext, string path, out DataViewSchema? inputSchema, SaliencyModelLoadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Saliency model file not found: '{path}'.", path);
        using var file = File.OpenRead(path);
        try
        {
            return Load(mlContext, file, out inputSchema, options);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}': {e.Message}", e);
        }
    }

    /// <summary>Loads a pipeline from a stream (see <see cref="Load(MLContext, string, out DataViewSchema?, SaliencyModelLoadOptions?)"/>).</summary>
    public static ITransformer Load(MLContext mlContext, Stream stream, out DataViewSchema? inputSchema, SaliencyModelLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(stream);
        options ??= new SaliencyModelLoadOptions();
        // The image transforms live in an assembly ML.NET may not have scanned yet in a fresh process.
        mlContext.ComponentCatalog.RegisterAssembly(typeof(ImageLoadingTransformer).Assembly);

        ZipArchive zip;
        try
        {
            zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"Not a saved saliency pipeline (not a zip file): {e.Message}", e);
        }
        using (zip)
        {
            var manifest = ReadManifest(ReadText(zip, ManifestEntry));
            if (manifest.Format != FormatName)
                throw new InvalidDataException($"Not a saved saliency pipeline ({ManifestEntry} has no format \"{FormatName}\").");
            if (manifest.Version != FormatVersion)
                throw new InvalidDataException($"Unsupported saliency pipeline version {manifest.Version}; this library reads version {FormatVersion}.");

            inputSchema = null;
            if (zip.GetEntry(InputSchemaEntry) is not null)
            {
                using var ms = new MemoryStream(ReadBytes(zip, InputSchemaEntry));
                var empty = mlContext.Model.Load(ms, out var schema);
                inputSchema = schema;
                (empty as IDisposable)?.Dispose();
            }

            var transformers = new List<ITransformer>();
            try
            {
                foreach (var node in manifest.Stages ?? throw new InvalidDataException($"{ManifestEntry} has no stage list."))
                {
                    var kind = node?.Kind;
                    if (kind == "mlnet")
                    {
                        using var ms = new MemoryStream(ReadBytes(zip, Named(node!.Entry, "entry")));
                        var loaded = mlContext.Model.Load(ms, out _);
                        transformers.AddRange(Flatten(loaded));
                    }
                    else if (kind == "saliency")
                    {
                        OnnxFiles? onnx = null;
                        var settingsEntry = Named(node!.Settings, "settings");
                        if (node.OnnxFiles is { } onnxNames)
                        {
                            var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
                            var prefix = settingsEntry[..settingsEntry.LastIndexOf(".saliency.json", StringComparison.Ordinal)] + ".onnx/";
                            foreach (var n in onnxNames)
                            {
                                var name = n ?? throw new InvalidDataException($"{ManifestEntry} lists an ONNX file without a name.");
                                files[name] = ReadBytes(zip, prefix + name);
                            }
                            onnx = new OnnxFiles("", files);
                        }
                        transformers.Add(LoadStage(ReadText(zip, settingsEntry), ReadBytes(zip, Named(node.Weights, "weights")), onnx, options, StageLog.For(mlContext)));
                    }
                    else
                    {
                        throw new InvalidDataException($"Unknown stage kind \"{kind}\" in {ManifestEntry}.");
                    }
                }
            }
            catch
            {
                foreach (var t in transformers) (t as IDisposable)?.Dispose();
                throw;
            }

            if (manifest.BareTransformer == true && transformers.Count == 1)
                return transformers[0];
            return new TransformerChain<ITransformer>(transformers.ToArray());
        }
    }

    private static PipelineManifest ReadManifest(string json)
    {
        try
        {
            return JsonSerializer.Deserialize(json, PersistenceJsonContext.Default.PipelineManifest)
                   ?? throw new InvalidDataException($"{ManifestEntry} is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{ManifestEntry} is not a valid stage list: {e.Message}", e);
        }
    }

    /// <summary>A stage's zip entry name, which the manifest must give.</summary>
    private static string Named(string? entry, string field) =>
        entry ?? throw new InvalidDataException($"A stage in {ManifestEntry} has no \"{field}\" entry.");

    private static SaliencyTransformer LoadStage(string json, byte[] weights, OnnxFiles? onnx, SaliencyModelLoadOptions options, StageLog log)
    {
        StageConfig config;
        try
        {
            config = StageConfig.FromJson(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"The saliency stage settings are not valid JSON: {e.Message}", e);
        }
        if (config.Source == ModelSourceKind.Onnx)
        {
            if (onnx is null || config.OnnxModelFileName is not { } modelName || !onnx.Files.ContainsKey(modelName))
                throw new InvalidDataException($"The saliency stage '{config.OutputColumn}' was built from an ONNX model, but its .onnx file is missing from the saved pipeline.");
            config = config with { Onnx = onnx with { ModelFileName = modelName } };
        }
        if (options.Device is not null) config = config with { Device = options.Device };
        if (options.BatchSize is { } b)
        {
            if (b < 1) throw new ArgumentOutOfRangeException(nameof(options), b, "BatchSize must be at least 1.");
            config = config with { BatchSize = b };
        }

        Func<nn.Module<Tensor, Tensor>> create = config.Source switch
        {
            ModelSourceKind.Zoo => () => ModelPrototype.CreateArchitecture(config.Architecture, config.ArchitectureClasses, null, null),
            ModelSourceKind.Spec => () => ModelPrototype.CreateArchitecture(null, 0, config.ModelSpecJson, null),
            ModelSourceKind.Onnx => () => OnnxSource.Create(config.Onnx!),
            _ => options.ModelFactory is { } f
                ? () => ModelPrototype.CreateArchitecture(null, 0, null, f)
                : throw new InvalidOperationException(
                    $"The saliency stage '{config.OutputColumn}' was built from a {(config.Source == ModelSourceKind.Factory ? "ModelFactory" : "Model instance")}, " +
                    "whose architecture is code, not data: pass SaliencyModelLoadOptions.ModelFactory to rebuild it (the weights come from the file)."),
        };
        var device = ModelPool.ParseDevice(config.Device);
        var model = create();
        try
        {
            using (var scope = torch.NewDisposeScope())
            using (var stream = new MemoryStream(weights))
            {
                Dictionary<string, Tensor> state;
                try
                {
                    state = Safetensors.LoadStateDict(stream, true);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    throw new InvalidDataException($"The weights of saliency stage '{config.OutputColumn}' could not be read: {e.Message}", e);
                }
                try
                {
                    WeightLoader.LoadStateDict(model, state, strict: true);
                }
                catch (StateDictMismatchException e)
                {
                    throw new InvalidDataException($"The saved weights do not fit the rebuilt model of stage '{config.OutputColumn}': {e.Message}", e);
                }
            }
            config.CheckLayers(model);
            return new SaliencyTransformer(config, ModelPool.FromLoaded(model, device, create), log);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static byte[] SaveMLNet(MLContext ml, ITransformer model, DataViewSchema? schema, string what)
    {
        using var ms = new MemoryStream();
        try
        {
            ml.Model.Save(model, schema, ms);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new NotSupportedException($"ML.NET could not save {what}: {e.Message}", e);
        }
        return ms.ToArray();
    }

    /// <summary>The stages of a transformer, with (nested) transformer chains expanded.</summary>
    internal static IEnumerable<ITransformer> Flatten(ITransformer model)
    {
        var type = model.GetType();
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(TransformerChain<>) && model is IEnumerable<ITransformer> chain)
        {
            foreach (var t in chain)
                foreach (var inner in Flatten(t))
                    yield return inner;
        }
        else
        {
            yield return model;
        }
    }

    private static void Write(ZipArchive zip, string name, byte[] bytes)
    {
        var entry = zip.CreateEntry(name, CompressionLevel.Fastest);
        using var s = entry.Open();
        s.Write(bytes);
    }

    private static byte[] ReadBytes(ZipArchive zip, string name)
    {
        var entry = zip.GetEntry(name) ?? throw new InvalidDataException($"The entry '{name}' is missing.");
        using var s = entry.Open();
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    private static string ReadText(ZipArchive zip, string name) => System.Text.Encoding.UTF8.GetString(ReadBytes(zip, name));
}
