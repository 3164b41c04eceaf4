using System.Text.Json;
using System.Text.Json.Serialization;
using Ebp.Composites;
using Ebp.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ebp.MLNet.Internal;

/// <summary>Where a stage's model architecture comes from.</summary>
internal enum ModelSourceKind { Zoo, Spec, Factory, Module, Onnx }

/// <summary>
/// The validated, serialisable settings of one saliency stage. <see cref="NumClasses"/>, <see cref="MapHeight"/> and
/// <see cref="MapWidth"/> are known once <see cref="Resolve"/> has seen the model (or after loading).
/// </summary>
internal sealed record StageConfig
{
    /// <summary>
    /// 2 added <see cref="TopK"/>, <see cref="TopKClassesColumn"/> and <see cref="ErrorColumn"/>; 3 added <see cref="ClassNames"/>
    /// and <see cref="PredictedLabelFormat"/>; 4 added <see cref="ModelSourceKind.Onnx"/> and <see cref="OnnxModelFileName"/>.
    /// Older files still load.
    /// </summary>
    public const int FormatVersion = 4;

    public int Version { get; init; } = FormatVersion;
    public string OutputColumn { get; init; } = SaliencyEstimator.Defaults.OutputColumnName;
    public string InputColumn { get; init; } = SaliencyEstimator.Defaults.InputColumnName;
    public ModelSourceKind Source { get; init; }
    public string? Architecture { get; init; }
    public int ArchitectureClasses { get; init; } = SaliencyEstimator.Defaults.NumClasses;
    public string? ModelSpecJson { get; init; }
    /// <summary>The ONNX model's file name (version 4), for an <see cref="ModelSourceKind.Onnx"/> stage.</summary>
    public string? OnnxModelFileName { get; init; }
    /// <summary>The ONNX model's files (not part of the settings JSON: the saved pipeline stores them as entries).</summary>
    [JsonIgnore] public OnnxFiles? Onnx { get; init; }
    public SaliencyMethod Method { get; init; }
    public string SaliencyLayer { get; init; } = "";
    public string? ContrastLayer { get; init; }
    public string? ClassifierLayer { get; init; }
    public MapResolution Resolution { get; init; }
    public ResizeMode ResizeMode { get; init; }
    public double? SmoothingSigma { get; init; }
    public int BatchSize { get; init; } = SaliencyEstimator.Defaults.BatchSize;
    public string Device { get; init; } = SaliencyEstimator.Defaults.Device;
    public int ImageWidth { get; init; } = SaliencyEstimator.Defaults.ImageSize;
    public int ImageHeight { get; init; } = SaliencyEstimator.Defaults.ImageSize;
    public float[] Mean { get; init; } = SaliencyEstimator.Defaults.Mean();
    public float[] Std { get; init; } = SaliencyEstimator.Defaults.Std();
    /// <summary>Input channels of the model (1 = grey, 3 = colour), from its first convolution.</summary>
    public int Channels { get; init; } = 3;
    public ChannelOrder ChannelOrder { get; init; }
    public float Scale { get; init; } = SaliencyEstimator.Defaults.Scale;
    public SaliencyTargetKind Target { get; init; }
    public int TargetClass { get; init; }
    public string? LabelColumn { get; init; }
    public string? PredictedColumn { get; init; }
    public string? ScoresColumn { get; init; }
    public string? OverlayColumn { get; init; }
    public float OverlayAlpha { get; init; } = SaliencyEstimator.Defaults.OverlayAlpha;
    public InvalidRowHandling InvalidRows { get; init; }
    public string? ErrorColumn { get; init; } = SaliencyEstimator.Defaults.ErrorColumnName;
    public int TopK { get; init; } = SaliencyEstimator.Defaults.TopK;
    public string? TopKClassesColumn { get; init; } = SaliencyEstimator.Defaults.TopKClassesColumnName;
    /// <summary>Class names in class-index order, or null (version 3).</summary>
    public string[]? ClassNames { get; init; }
    /// <summary>The predicted-label column's type as asked for (version 3; older files: <see cref="PredictedLabelFormat.Index"/>).</summary>
    public PredictedLabelFormat PredictedLabelFormat { get; init; } = PredictedLabelFormat.Index;

    /// <summary>Whether the predicted-label column is an ML.NET key (class + 1, with the class names as key values).</summary>
    [JsonIgnore] public bool PredictedIsKey => PredictedLabelFormat == PredictedLabelFormat.Key
                                              || (PredictedLabelFormat == PredictedLabelFormat.Auto && ClassNames is not null);

    /// <summary>The key values of the predicted label and the slot names of the scores: the class names, or "0", "1", ….</summary>
    [JsonIgnore] public string[] ClassNamesOrIndices => ClassNames ?? Enumerable.Range(0, NumClasses).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    // Resolved from the model.
    public int NumClasses { get; init; }
    public int MapHeight { get; init; }
    public int MapWidth { get; init; }

    [JsonIgnore] public bool IsResolved => NumClasses > 0 && MapHeight > 0 && MapWidth > 0;
    [JsonIgnore] public int PixelCount => Channels * ImageHeight * ImageWidth;

    /// <summary>Values of one row's saliency column: <see cref="TopK"/> maps of <see cref="MapHeight"/>×<see cref="MapWidth"/>.</summary>
    [JsonIgnore] public int MapValues => TopK * MapHeight * MapWidth;

    /// <summary>Whether the stage adds the top-k classes column (only for <see cref="TopK"/> &gt; 1).</summary>
    [JsonIgnore] public bool HasTopKColumn => TopK > 1 && TopKClassesColumn is not null;

    // Reflection, not the source-generated context: generated code sets the init-only properties a file lacks to
    // default(T) rather than to their initialisers, and files of format version 1 rely on the initialisers (TopK = 1, …).
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static StageConfig FromJson(string json)
    {
        var c = JsonSerializer.Deserialize<StageConfig>(json, Json)
                ?? throw new InvalidDataException("The saliency stage settings are empty.");
        if (c.Version is < 1 or > FormatVersion)
            throw new InvalidDataException($"The saliency stage was saved with format version {c.Version}; this library reads versions 1–{FormatVersion}.");
        if (!c.IsResolved)
            throw new InvalidDataException("The saliency stage settings lack the model's class count or map size.");
        // Version 1 has no TopK/TopKClassesColumn/ErrorColumn: the defaults apply (TopK 1, error column "SaliencyError").
        if (c.TopK < 1 || c.TopK > c.NumClasses)
            throw new InvalidDataException($"The saliency stage settings hold TopK = {c.TopK}; it must be in 1..{c.NumClasses}.");
        c.CheckTopK();
        if (c.ClassNames is { } names && names.Length != c.NumClasses)
            throw new InvalidDataException($"The saliency stage settings list {names.Length} class names for a model of {c.NumClasses} classes.");
        return c with { Version = FormatVersion };
    }

    /// <summary>Validates the options that do not need a model or schema and captures them.</summary>
    public static StageConfig From(SaliencyEstimator.Options o)
    {
        const string p = "options";
        if (string.IsNullOrWhiteSpace(o.OutputColumnName))
            throw new ArgumentException("OutputColumnName must be a non-empty column name.", p);
        string input = o.InputColumnName ?? SaliencyEstimator.Defaults.InputColumnName;
        if (input.Length == 0) throw new ArgumentException("InputColumnName must not be empty (null means \"Image\").", p);

        // ModelSources.Expand has checked that exactly one model source is set and turned a card or an ONNX file into these.
        var source = o.OnnxFiles is not null ? ModelSourceKind.Onnx
            : o.Architecture is not null ? ModelSourceKind.Zoo
            : o.ModelSpecJson is not null ? ModelSourceKind.Spec
            : o.ModelFactory is not null ? ModelSourceKind.Factory : ModelSourceKind.Module;
        if (source == ModelSourceKind.Zoo)
        {
            if (!ModelZoo.Names.Contains(o.Architecture!.Trim(), StringComparer.OrdinalIgnoreCase))
                throw new ArgumentException($"Unknown architecture \"{o.Architecture}\". Valid names: {string.Join(", ", ModelZoo.Names)}.", p);
            if (o.NumClasses <= 0) throw new ArgumentException($"NumClasses must be positive (got {o.NumClasses}).", p);
        }
        if (source == ModelSourceKind.Module && o.WeightsPath is not null)
            throw new ArgumentException("WeightsPath cannot be combined with Model (an instance is used as is); load the weights into it first.", p);
        if (o.WeightsPath is not null && o.WeightsPath.Length == 0)
            throw new ArgumentException("WeightsPath must not be empty (null means: no weight file).", p);

        try
        {
            new SaliencyOptions
            {
                Method = o.Method, ContrastLayer = o.ContrastLayer, ClassifierLayer = o.ClassifierLayer,
                SmoothingSigma = o.SmoothingSigma, ResizeMode = o.ResizeMode,
            }.CheckRules(); // the engine's own rules, checked here before any model is built
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException(e.Message, p, e);
        }
        if (o.BatchSize < 1) throw new ArgumentException($"BatchSize must be at least 1 (got {o.BatchSize}).", p);
        if (string.IsNullOrWhiteSpace(o.Device)) throw new ArgumentException("Device must be a TorchSharp device string such as \"cpu\" or \"cuda\".", p);
        if (o.ImageWidth is not > 0 || o.ImageHeight is not > 0)
            throw new ArgumentException($"ImageWidth and ImageHeight must be positive (got {o.ImageWidth}×{o.ImageHeight}).", p);
        if (o.Mean is not { Length: 1 or 3 } || o.Mean.Any(m => !float.IsFinite(m)))
            throw new ArgumentException("Mean must hold one finite value per model input channel (1 or 3), in model order.", p);
        if (o.Std is not { Length: 1 or 3 } || o.Std.Any(v => !(v > 0) || !float.IsFinite(v)))
            throw new ArgumentException("Std must hold one positive finite value per model input channel (1 or 3), in model order.", p);
        if (!(o.Scale > 0) || !float.IsFinite(o.Scale)) throw new ArgumentException($"Scale must be positive (got {o.Scale}).", p);
        if (!(o.OverlayAlpha >= 0 && o.OverlayAlpha <= 1)) throw new ArgumentException($"OverlayAlpha must be in [0, 1] (got {o.OverlayAlpha}).", p);
        if (o.TopK < 1) throw new ArgumentException($"TopK must be at least 1 (got {o.TopK}).", p);
        if (o.ClassNames is { } names && (names.Length == 0 || names.Any(n => n is null) || names.Distinct(StringComparer.Ordinal).Count() != names.Length))
            throw new ArgumentException("ClassNames must list each class once, in class-index order (no null or repeated name).", p);

        switch (o.Target)
        {
            case SaliencyTargetKind.FixedClass when o.TargetClass < 0:
                throw new ArgumentException($"TargetClass must be a 0-based class index (got {o.TargetClass}).", p);
            case SaliencyTargetKind.LabelColumn when string.IsNullOrEmpty(o.LabelColumnName):
                throw new ArgumentException("Target = LabelColumn needs LabelColumnName.", p);
            case not SaliencyTargetKind.LabelColumn when o.LabelColumnName is not null:
                throw new ArgumentException($"LabelColumnName is set but Target is {o.Target}; set Target = SaliencyTargetKind.LabelColumn to use it.", p);
        }

        var outputs = new[]
            {
                o.OutputColumnName, o.PredictedLabelColumnName, o.ScoresColumnName, o.OverlayColumnName, o.ErrorColumnName,
                o.TopK > 1 ? o.TopKClassesColumnName : null,
            }
            .Where(n => n is not null).ToList();
        if (outputs.Any(n => n!.Length == 0))
            throw new ArgumentException("Output column names must not be empty (null omits an optional column).", p);
        var dup = outputs.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ArgumentException($"The output column name '{dup.Key}' is used twice.", p);

        return new StageConfig
        {
            OutputColumn = o.OutputColumnName,
            InputColumn = input,
            Source = source,
            Architecture = o.Architecture?.Trim(),
            ArchitectureClasses = o.NumClasses,
            ModelSpecJson = o.ModelSpecJson,
            OnnxModelFileName = o.OnnxFiles?.ModelFileName,
            Onnx = o.OnnxFiles,
            Method = o.Method,
            SaliencyLayer = o.SaliencyLayer ?? "",
            ContrastLayer = o.ContrastLayer,
            ClassifierLayer = o.ClassifierLayer,
            Resolution = o.Resolution,
            ResizeMode = o.ResizeMode,
            SmoothingSigma = o.SmoothingSigma,
            BatchSize = o.BatchSize,
            Device = o.Device,
            ImageWidth = o.ImageWidth!.Value,
            ImageHeight = o.ImageHeight!.Value,
            ClassNames = (string[]?)o.ClassNames?.Clone(),
            PredictedLabelFormat = o.PredictedLabelFormat,
            Mean = (float[])o.Mean.Clone(),
            Std = (float[])o.Std.Clone(),
            ChannelOrder = o.ChannelOrder,
            Scale = o.Scale,
            Target = o.Target,
            TargetClass = o.TargetClass,
            LabelColumn = o.LabelColumnName,
            PredictedColumn = o.PredictedLabelColumnName,
            ScoresColumn = o.ScoresColumnName,
            OverlayColumn = o.OverlayColumnName,
            OverlayAlpha = o.OverlayAlpha,
            InvalidRows = o.InvalidRows,
            ErrorColumn = o.ErrorColumnName,
            TopK = o.TopK,
            TopKClassesColumn = o.TopKClassesColumnName,
        };
    }

    /// <summary>
    /// <see cref="TopK"/> &gt; 1 maps the top-k <i>predicted</i> classes, so it needs <see cref="SaliencyTargetKind.Predicted"/>.
    /// Checked by <c>Fit</c> and the estimator's <c>GetOutputSchema</c> (as a schema-time error).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">TopK &gt; 1 with another target.</exception>
    public void CheckTopK()
    {
        if (TopK > 1 && Target != SaliencyTargetKind.Predicted)
            throw new ArgumentOutOfRangeException("options", TopK,
                $"TopK = {TopK} maps the top-{TopK} predicted classes and needs Target = SaliencyTargetKind.Predicted, but Target is {Target}. " +
                "Use TopK = 1 with a FixedClass or LabelColumn target, or Target = Predicted with TopK > 1.");
    }

    private void CheckTopKClasses(int classes)
    {
        if (TopK > classes)
            throw new ArgumentOutOfRangeException("options", TopK, $"TopK = {TopK} is more than the model's {classes} classes.");
    }

    /// <summary>The engine options of one call.</summary>
    public SaliencyOptions ToSaliencyOptions() => new()
    {
        Method = Method,
        SaliencyLayer = SaliencyLayer,
        ContrastLayer = ContrastLayer,
        ClassifierLayer = ClassifierLayer,
        Resize = Resolution == MapResolution.Input ? MapSize.Input : null,
        ResizeMode = ResizeMode,
        SmoothingSigma = SmoothingSigma,
    };

    /// <summary>
    /// Checks the layer names (and the input channel count) against the model, as ML.NET schema errors.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An unknown layer name, or a model that does not take 3 channels.</exception>
    public void CheckLayers(nn.Module model)
    {
        var modules = ModelInspection.NamedModules(model);
        void Require(string? name, string what)
        {
            if (string.IsNullOrEmpty(name)) return; // "" is the input
            if (ModelInspection.UnknownLayerMessage(modules, name, what) is { } problem) throw new ArgumentOutOfRangeException("options", problem);
        }
        Require(SaliencyLayer, "saliency layer");
        Require(ContrastLayer, "contrast layer");
        Require(ClassifierLayer, "classifier layer");
        CheckTopK();
        // The class count is known here when the last layer is a Linear (otherwise Resolve finds it by running the model).
        var lastName = ModelInspection.DefaultClassifierLayer(model);
        if (lastName is not null && modules.First(m => m.Name == lastName).Module is Linear lastLinear)
            CheckTopKClasses(checked((int)lastLinear.out_features));

        var first = modules.FirstOrDefault(m => m.Module is Linear or Convolution).Module;
        if (first is Conv2d conv && conv.in_channels is not (1 or 3))
            throw new ArgumentOutOfRangeException("options",
                $"The model's first convolution takes {conv.in_channels} channels; the saliency stage feeds grey (1) or colour (3) images.");
        if (first is Conv1d or Conv3d or Linear)
            throw new ArgumentOutOfRangeException("options",
                $"The model's first weighted layer is a {first.GetType().Name}; the saliency stage needs an image model whose first layer is a Conv2d.");
    }

    /// <summary>
    /// Reads the class count and map size from the model: the class count from the last layer if it is a
    /// <see cref="Linear"/>, otherwise (and for <see cref="MapResolution.Native"/>) by running the model once on a
    /// constant image. Also checks the layer names.
    /// </summary>
    public StageConfig Resolve(nn.Module<Tensor, Tensor> model)
    {
        var withChannels = WithChannels(model);
        if (!ReferenceEquals(withChannels, this)) return withChannels.Resolve(model);
        CheckLayers(model);
        int classes = 0;
        var last = ModelInspection.DefaultClassifierLayer(model);
        var lastModule = last is null ? null : ModelInspection.NamedModules(model).First(m => m.Name == last).Module;
        if (lastModule is Linear linear) classes = checked((int)linear.out_features);

        int mapH = ImageHeight, mapW = ImageWidth;
        // Contrastive EBP: the engine learns the layer order from the forward pass, so one probe pass on a constant
        // image checks it here, at Fit, instead of at the first batch.
        if (classes == 0 || Resolution == MapResolution.Native || Method == SaliencyMethod.ContrastiveExcitationBackprop)
        {
            using var scope = torch.NewDisposeScope();
            var device = model.parameters().FirstOrDefault()?.device ?? torch.CPU;
            var x = torch.full(new long[] { 1, Channels, ImageHeight, ImageWidth }, 0.5f, device: device);
            SaliencyResult result;
            try
            {
                result = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Class(0), ToSaliencyOptions());
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or UnsupportedLayerException or EbpRuleException or CustomAutogradFunctionException)
            {
                throw new ArgumentOutOfRangeException(
                    $"The saliency configuration does not work with this model on {ImageWidth}×{ImageHeight} images: {e.Message}", e) ;
            }
            using (result)
            {
                if (result.Scores.dim() != 2)
                    throw new ArgumentException($"The model output has shape [{string.Join(", ", result.Scores.shape)}]; the saliency stage needs [batch, classes].", "options");
                classes = (int)result.Scores.shape[1];
                if (result.Map.dim() != 4)
                    throw new ArgumentException($"The saliency map has shape [{string.Join(", ", result.Map.shape)}]; the saliency stage needs a 2-D map.", "options");
                mapH = (int)result.Map.shape[2];
                mapW = (int)result.Map.shape[3];
            }
        }
        CheckTopKClasses(classes);
        if (ClassNames is { } names && names.Length != classes)
            throw new ArgumentOutOfRangeException("options", names.Length,
                $"{names.Length} class names are given but the model has {classes} classes; list one name per class, in class-index order.");
        if (Target == SaliencyTargetKind.FixedClass && TargetClass >= classes)
            throw new ArgumentOutOfRangeException("options", TargetClass, $"TargetClass {TargetClass} is out of range: the model has {classes} classes (0..{classes - 1}).");
        return this with { NumClasses = classes, MapHeight = mapH, MapWidth = mapW };
    }

    /// <summary>
    /// This configuration with <see cref="Channels"/> read from the model's first convolution (1 or 3), and
    /// Mean/Std of one value per channel: a single value is used for every channel, and three equal values
    /// (the defaults) serve a grey model. Returns this instance when nothing changes.
    /// </summary>
    public StageConfig WithChannels(nn.Module model)
    {
        var first = ModelInspection.NamedModules(model).FirstOrDefault(m => m.Module is Linear or Convolution).Module;
        int channels = first is Conv2d conv ? checked((int)conv.in_channels) : 3;
        if (channels is not (1 or 3))
            throw new ArgumentOutOfRangeException("options",
                $"The model's first convolution takes {channels} channels; the saliency stage feeds grey (1) or colour (3) images.");
        float[] Fit(float[] values, string what)
        {
            if (values.Length == channels) return values;
            if (values.Length == 1) return Enumerable.Repeat(values[0], channels).ToArray();
            if (channels == 1 && values.All(v => v == values[0])) return new[] { values[0] };
            throw new ArgumentOutOfRangeException("options",
                $"{what} has {values.Length} values but the model takes {channels} input channel(s); give one value per channel.");
        }
        var mean = Fit(Mean, "Mean");
        var std = Fit(Std, "Std");
        if (channels == Channels && ReferenceEquals(mean, Mean) && ReferenceEquals(std, Std)) return this;
        return this with { Channels = channels, Mean = mean, Std = std };
    }
}
