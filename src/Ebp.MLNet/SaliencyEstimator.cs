using Ebp.MLNet.Internal;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.MLNet;

/// <summary>
/// The ML.NET estimator of <see cref="SaliencyTransformer"/>: adds an Excitation Backprop saliency map column (and the
/// model's predicted class and scores) to image rows. Create it with
/// <c>mlContext.Transforms.ComputeSaliency(...)</c>.
/// </summary>
/// <remarks>
/// <para>
/// Nothing is learned from the data: <see cref="Fit"/> checks the input schema (columns, types, vector size, layer
/// names), builds the model and returns the transformer without reading a row.
/// </para>
/// <para>
/// | Does this estimator need to look at the data to train its parameters? | No |
/// | Input column data type | <c>MLImage</c> (from <c>LoadImages</c>/<c>ResizeImages</c>) or known-size vector of <see cref="float"/> of size C·H·W (C = the model's 1 or 3 input channels) |
/// | Output column data type | <c>Vector&lt;Single, H, W&gt;</c> (saliency; <c>Vector&lt;Single, k, H, W&gt;</c> with <see cref="Options.TopK"/> = k &gt; 1), <see cref="int"/> or a key with the class names as <c>KeyValues</c> (predicted class), <c>Vector&lt;Single, classes&gt;</c> (scores), <c>Vector&lt;Int32, k&gt;</c> (top-k classes, only for k &gt; 1), optional <c>MLImage</c> (overlay), <see cref="string"/> (row error, "" for computed rows) |
/// </para>
/// </remarks>
public sealed class SaliencyEstimator : IEstimator<SaliencyTransformer>
{
    private readonly Options _options;
    private readonly StageConfig _config;
    private ModelPrototype? _prototype;
    private readonly object _gate = new();

    /// <summary>Creates the estimator. Prefer <c>mlContext.Transforms.ComputeSaliency(options)</c>.</summary>
    /// <exception cref="ArgumentException">The options are inconsistent (the message names the option).</exception>
    public SaliencyEstimator(Options options) : this(options, null) { }

    /// <summary>The catalog's constructor: <paramref name="env"/> is the context whose <c>Log</c> receives the stage's messages.</summary>
    internal SaliencyEstimator(Options options, Microsoft.ML.Runtime.IHostEnvironment? env)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = ModelSources.Expand(options);
        _config = StageConfig.From(_options);
        _log = StageLog.For(env);
    }

    private readonly StageLog _log;

    /// <summary>
    /// Checks <paramref name="input"/>'s schema, builds the model (architecture and weights) and returns the transformer.
    /// Reads no row.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or has the wrong type or size, a layer name is
    /// unknown (ML.NET's "Schema mismatch for input column 'X': expected …, got …" wording), or
    /// <see cref="Options.TopK"/> &gt; 1 is combined with a target other than <see cref="SaliencyTargetKind.Predicted"/> or
    /// exceeds the model's classes.</exception>
    public SaliencyTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        _config.CheckTopK();
        ModelPrototype? prototype;
        lock (_gate)
        {
            prototype = _prototype;
            _prototype = null; // hand the cached architecture to this transformer; a second Fit builds a new one
        }
        prototype ??= ModelPrototype.Build(_options);
        // Columns before any weights are loaded or rows read; the channel count comes from the architecture.
        try { Binding.CheckColumns(input.Schema, _config.WithChannels(prototype.Module), numClasses: null); }
        catch
        {
            if (prototype.Owned) prototype.Module.Dispose();
            throw;
        }
        ModelPool? pool = null;
        try
        {
            pool = ModelPool.Create(prototype.Module, _options, prototype.Owned);
            var resolved = _config.Resolve(pool.Primary);
            Binding.CheckColumns(input.Schema, resolved, resolved.NumClasses);
            using (var channel = _log.Start())
                channel?.Info(MessageSensitivity.None, $"Model built: {Describe(resolved)}; device {resolved.Device}, batch size {resolved.BatchSize}.");
            return new SaliencyTransformer(resolved, pool, _log);
        }
        catch
        {
            if (pool is not null) pool.Dispose();
            else if (prototype.Owned) prototype.Module.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Schema propagation: checks the input columns and the layer names and returns the output shape. The first call
    /// builds the model architecture (without weights) to read its layer names; <see cref="Fit"/> reuses it.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">As <see cref="Fit"/>.</exception>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        _config.CheckTopK();
        ModelPrototype prototype;
        lock (_gate)
        {
            _prototype ??= ModelPrototype.Build(_options);
            prototype = _prototype;
        }
        // The channel count comes from the architecture, so the expected type in a message is the model's.
        var config = _config.WithChannels(prototype.Module);
        Binding.CheckShape(inputSchema, config);
        config.CheckLayers(prototype.Module);
        return Binding.OutputShape(inputSchema, config);
    }

    internal static string Describe(StageConfig c) =>
        $"{c.Source switch { ModelSourceKind.Zoo => c.Architecture, ModelSourceKind.Spec => "model spec", ModelSourceKind.Factory => "model factory", _ => "model instance" }}, " +
        $"{c.Channels}×{c.ImageHeight}×{c.ImageWidth} input, {c.NumClasses} classes{(c.ClassNames is null ? "" : " (named)")}, " +
        $"{c.Method} at '{(c.SaliencyLayer.Length == 0 ? "(input)" : c.SaliencyLayer)}', maps {c.MapHeight}×{c.MapWidth}";

    /// <summary>
    /// The defaults of <see cref="Options"/>, in one place (as ML.NET's estimators keep theirs): the stage's saved
    /// settings and the audit tool (<c>ebp-audit</c>) take the same values from here.
    /// </summary>
    public static class Defaults
    {
        /// <summary>The saliency map column.</summary>
        public const string OutputColumnName = "Saliency";

        /// <summary>The image column when <see cref="Options.InputColumnName"/> is null.</summary>
        public const string InputColumnName = "Image";

        /// <summary>Classes of a <see cref="Options.Architecture"/> model (ImageNet).</summary>
        public const int NumClasses = 1000;

        /// <summary>Model input width and height, in pixels, when neither the options nor the model source give them.</summary>
        public const int ImageSize = 224;

        /// <summary>Rows per forward/backward pass.</summary>
        public const int BatchSize = 8;

        /// <summary>The TorchSharp device.</summary>
        public const string Device = "cpu";

        /// <summary>Pixel scale before the mean and std (bytes to [0, 1]).</summary>
        public const float Scale = 1f / 255;

        /// <summary>Classes mapped per row.</summary>
        public const int TopK = 1;

        /// <summary>The top-k classes column.</summary>
        public const string TopKClassesColumnName = "TopKClasses";

        /// <summary>The predicted class column.</summary>
        public const string PredictedLabelColumnName = "PredictedLabel";

        /// <summary>The scores column.</summary>
        public const string ScoresColumnName = "Scores";

        /// <summary>Opacity of the heat map in overlays.</summary>
        public const float OverlayAlpha = 0.5f;

        /// <summary>The row error column.</summary>
        public const string ErrorColumnName = "SaliencyError";

        /// <summary>The per-channel mean (none) for <paramref name="channels"/> channels (a new array).</summary>
        /// <param name="channels">The model's input channels.</param>
        public static float[] Mean(int channels = 3) => new float[channels];

        /// <summary>The per-channel standard deviation (none) for <paramref name="channels"/> channels (a new array).</summary>
        /// <param name="channels">The model's input channels.</param>
        public static float[] Std(int channels = 3) => Enumerable.Repeat(1f, channels).ToArray();
    }

    /// <summary>Options of <see cref="SaliencyEstimator"/>. Every default is documented on its property.</summary>
    /// <remarks>
    /// <para><b>Model.</b> Set exactly one of <see cref="ModelCardPath"/> (a model card), <see cref="Architecture"/> (a
    /// <see cref="Models.ModelZoo"/> name), <see cref="ModelSpecJson"/> (an Ebp model spec), <see cref="ModelFactory"/> or
    /// <see cref="Model"/>; add <see cref="WeightsPath"/> for the spec, architecture and factory (a card names its own). The
    /// model must take <c>[B, C, H, W]</c> float32 input, C = 1 (grey) or 3 (read from its first convolution), and return
    /// <c>[B, classes]</c>.</para>
    /// <para><b>Input.</b> An <c>MLImage</c> column is converted here: resized to <see cref="ImageWidth"/>×<see cref="ImageHeight"/>
    /// if needed, split into planes in <see cref="ChannelOrder"/>, and each value becomes
    /// <c>(byte · Scale − Mean[c]) / Std[c]</c>. A vector column must already hold planar pixels of size C·H·W, as
    /// <c>ExtractPixels(interleavePixelColors: false, scaleImage: 1f / 255, offsetImage: 0, orderOfExtraction: RGB)</c>
    /// produces; only <c>(v − Mean[c]) / Std[c]</c> is applied to it. Excitation Backprop assumes non-negative
    /// activations: inputs in [0, 1] (the defaults) are the natural choice; ImageNet mean/std normalisation works but
    /// gives negative inputs to the first layer.</para>
    /// <para><b>Device.</b> <see cref="Device"/> is a TorchSharp device string. <c>"cuda"</c> works only when the
    /// application references a CUDA build of TorchSharp (<c>TorchSharp-cuda-linux</c> / <c>TorchSharp-cuda-windows</c>)
    /// instead of <c>TorchSharp-cpu</c>; otherwise <see cref="Fit"/> throws an <see cref="ArgumentException"/> saying so (no
    /// silent fallback to the CPU).</para>
    /// </remarks>
    public sealed class Options
    {
        /// <summary>
        /// The saliency map column, <c>Vector&lt;Single, H, W&gt;</c>, or <c>Vector&lt;Single, k, H, W&gt;</c> with <see cref="TopK"/> = k &gt; 1
        /// (the map of rank r at index [r]). Default <c>"Saliency"</c>.
        /// </summary>
        public string OutputColumnName { get; set; } = Defaults.OutputColumnName;

        /// <summary>
        /// The image column: <c>MLImage</c> or a known-size float vector of C·<see cref="ImageHeight"/>·<see cref="ImageWidth"/> (C = the model's 1 or 3 input channels).
        /// Default null, which means <c>"Image"</c> (unlike most ML.NET transforms, not the output column's name,
        /// because the output is a map, not a transformed image).
        /// </summary>
        public string? InputColumnName { get; set; }

        /// <summary>A <see cref="Models.ModelZoo"/> architecture name (<c>vgg16</c>, <c>resnet50</c>, …). Default null.</summary>
        public string? Architecture { get; set; }

        /// <summary>Number of classes of a <see cref="Architecture"/> model. Default 1000 (ImageNet).</summary>
        public int NumClasses { get; set; } = Defaults.NumClasses;

        /// <summary>An Ebp model spec (<see cref="Models.ModelSpec.Build(string)"/>), e.g. a small VGG. Default null.</summary>
        public string? ModelSpecJson { get; set; }

        /// <summary>
        /// A model card (e.g. <c>models/cluttered-mnist-vgg.json</c>): the JSON file next to a model's weights holding its
        /// spec (<c>model</c>), weight file name (<c>weights</c>, in the card's folder), <c>class_names</c>, <c>input</c> size
        /// and suggested <c>saliency.saliency_layer</c>. These fill <see cref="WeightsPath"/>, <see cref="ClassNames"/>,
        /// <see cref="ImageWidth"/>, <see cref="ImageHeight"/> and <see cref="SaliencyLayer"/> unless those are set. Default null.
        /// </summary>
        public string? ModelCardPath { get; set; }

        /// <summary>
        /// An ONNX image classifier (<c>.onnx</c>, as for ML.NET's <c>ApplyOnnxModel</c>), imported with
        /// <see cref="Ebp.Onnx.OnnxModel.Load"/>. Its input shape gives <see cref="ImageWidth"/> and <see cref="ImageHeight"/>,
        /// its metadata the <see cref="ClassNames"/>, and the importer's suggested layers (<see cref="Ebp.Onnx.OnnxModel.Suggested"/>)
        /// fill <see cref="SaliencyLayer"/> (and, for contrastive EBP, <see cref="ContrastLayer"/> and <see cref="ClassifierLayer"/>)
        /// unless those are set. The file and its external data are read once and kept, and <see cref="SaliencyModel.Save(Microsoft.ML.MLContext, Microsoft.ML.ITransformer, Microsoft.ML.DataViewSchema?, string)"/>
        /// stores them. Default null.
        /// </summary>
        public string? OnnxModelPath { get; set; }

        /// <summary>The ONNX files read by <see cref="Internal.ModelSources.Expand"/>.</summary>
        internal Internal.OnnxFiles? OnnxFiles { get; set; }

        /// <summary>
        /// The model's class names, in class-index order: the <c>SlotNames</c> of <see cref="ScoresColumnName"/> and the
        /// <c>KeyValues</c> of a key-typed <see cref="PredictedLabelColumnName"/> (so that <c>MapKeyToValue</c> gives the name).
        /// Default null: from the model card, or none.
        /// </summary>
        public string[]? ClassNames { get; set; }

        /// <summary>
        /// The type of <see cref="PredictedLabelColumnName"/>. Default <see cref="PredictedLabelFormat.Auto"/>: a key whose
        /// values are the class names when <see cref="ClassNames"/> are known (from this option or the model card), else the
        /// 0-based <see cref="int"/> index.
        /// </summary>
        public PredictedLabelFormat PredictedLabelFormat { get; set; } = PredictedLabelFormat.Auto;

        /// <summary>
        /// Creates a new model instance (architecture; weights too, or from <see cref="WeightsPath"/>). Called once at
        /// <see cref="Fit"/> and again whenever more forward/backward passes run at the same time than instances exist
        /// (concurrent cursors); additional instances get the first instance's weights copied in, so a factory with
        /// random initialisation is fine. Default null.
        /// </summary>
        public Func<nn.Module<Tensor, Tensor>>? ModelFactory { get; set; }

        /// <summary>
        /// One model instance to use as is. It is shared by all cursors, whose calls are then serialised (one at a time),
        /// and is not disposed by the transformer. Default null.
        /// </summary>
        public nn.Module<Tensor, Tensor>? Model { get; set; }

        /// <summary>
        /// A weight file (safetensors, PyTorch <c>.pth</c> state_dict or TorchSharp format) loaded into the model with
        /// <see cref="Weights.WeightLoader.Load"/> (strict). Default null: the architecture's own initialisation.
        /// </summary>
        public string? WeightsPath { get; set; }

        /// <summary>Key prefix of the weight file to strip (e.g. <c>"model."</c>). Default <c>""</c>.</summary>
        public string WeightsPrefix { get; set; } = "";

        /// <summary>
        /// The method: <see cref="SaliencyMethod.ExcitationBackprop"/> (default), <see cref="SaliencyMethod.ContrastiveExcitationBackprop"/>
        /// (needs <see cref="ContrastLayer"/>) or <see cref="SaliencyMethod.Gradient"/>. Ebp's own enum is used so that the stage
        /// and <see cref="SaliencyExplainer"/> share one vocabulary.
        /// </summary>
        public SaliencyMethod Method { get; set; } = SaliencyMethod.ExcitationBackprop;

        /// <summary>
        /// The module whose output receives the map (<c>features.16</c>, <c>layer2</c>); <c>""</c> = the input. Default null:
        /// the <see cref="ModelCardPath"/> card's <c>saliency.saliency_layer</c>, or the input when there is no card.
        /// </summary>
        public string? SaliencyLayer { get; set; }

        /// <summary>Contrastive EBP: the layer where the contrast signal is subtracted (<c>classifier.4</c> for VGG16). Default null.</summary>
        public string? ContrastLayer { get; set; }

        /// <summary>Contrastive EBP: the layer whose weights are negated. Default null = the last convolution/linear layer.</summary>
        public string? ClassifierLayer { get; set; }

        /// <summary>Map resolution: <see cref="MapResolution.Input"/> (default) or the saliency layer's native size.</summary>
        public MapResolution Resolution { get; set; } = MapResolution.Input;

        /// <summary>Interpolation when the map is resized to the input. Default bilinear.</summary>
        public ResizeMode ResizeMode { get; set; } = ResizeMode.Bilinear;

        /// <summary>Gaussian smoothing sigma as a fraction of the map's larger side; null or 0 = none (default).</summary>
        public double? SmoothingSigma { get; set; }

        /// <summary>Rows per forward/backward pass inside a cursor. Default 8. Results do not depend on it.</summary>
        public int BatchSize { get; set; } = Defaults.BatchSize;

        /// <summary>TorchSharp device: <c>"cpu"</c> (default), <c>"cuda"</c>, <c>"cuda:1"</c> (see the class remarks).</summary>
        public string Device { get; set; } = Defaults.Device;

        /// <summary>Model input width in pixels. Default null: the model card's <c>input.width</c>, else 224.</summary>
        public int? ImageWidth { get; set; }

        /// <summary>Model input height in pixels. Default null: the model card's <c>input.height</c>, else 224.</summary>
        public int? ImageHeight { get; set; }

        /// <summary>Per-channel mean subtracted after scaling, in model channel order. Default [0, 0, 0].</summary>
        public float[] Mean { get; set; } = Defaults.Mean();

        /// <summary>Per-channel standard deviation divided by, in model channel order. Default [1, 1, 1].</summary>
        public float[] Std { get; set; } = Defaults.Std();

        /// <summary>Plane order of the model input for <c>MLImage</c> columns. Default <see cref="MLNet.ChannelOrder.Rgb"/>.</summary>
        public ChannelOrder ChannelOrder { get; set; } = ChannelOrder.Rgb;

        /// <summary>
        /// Factor applied to <c>MLImage</c> bytes (0–255) before Mean/Std. Default 1/255, matching <c>ExtractPixels(scaleImage: 1f / 255)</c>.
        /// Also used to turn a vector input back into display pixels for the overlay.
        /// </summary>
        public float Scale { get; set; } = Defaults.Scale;

        /// <summary>Target of the backward pass. Default <see cref="SaliencyTargetKind.Predicted"/> (top-1).</summary>
        public SaliencyTargetKind Target { get; set; } = SaliencyTargetKind.Predicted;

        /// <summary>
        /// Number of top predicted classes to map per row. Default 1: one map for <see cref="Target"/>. With k &gt; 1 (only with
        /// <see cref="Target"/> = <see cref="SaliencyTargetKind.Predicted"/>; otherwise <see cref="Fit"/> and
        /// <see cref="GetOutputSchema"/> throw <see cref="ArgumentOutOfRangeException"/>) the k highest-scoring classes of each
        /// row are mapped from <b>one</b> forward pass per batch (<see cref="SaliencyExplainer.ExplainEach"/> with
        /// <see cref="SaliencyTarget.TopK"/>): the saliency column becomes <c>Vector&lt;Single, k, H, W&gt;</c> with the map of
        /// rank r (0 = top-1) at [r], and <see cref="TopKClassesColumnName"/> holds the classes. The overlay shows the top-1 map.
        /// k must not exceed the model's classes.
        /// </summary>
        public int TopK { get; set; } = Defaults.TopK;

        /// <summary>
        /// With <see cref="TopK"/> = k &gt; 1: column of the mapped classes, <c>Vector&lt;Int32, k&gt;</c>, 0-based model class
        /// indices in rank order (descending score; ties to the lower index, as <see cref="PredictedLabelColumnName"/>), −1 for a
        /// skipped row. Not added when <see cref="TopK"/> is 1. Null omits it. Default <c>"TopKClasses"</c>.
        /// </summary>
        public string? TopKClassesColumnName { get; set; } = Defaults.TopKClassesColumnName;

        /// <summary>The class (0-based) for <see cref="SaliencyTargetKind.FixedClass"/>. Default 0.</summary>
        public int TargetClass { get; set; }

        /// <summary>
        /// The label column for <see cref="SaliencyTargetKind.LabelColumn"/>: a key type (value = class + 1; 0 is missing)
        /// or an integer type (value = class; negative is missing). A missing or out-of-range label is an invalid row
        /// (see <see cref="InvalidRows"/>). Default null.
        /// </summary>
        public string? LabelColumnName { get; set; }

        /// <summary>
        /// Column of the model's top-1 class. With <see cref="PredictedLabelFormat.Index"/>: <see cref="int"/>, the 0-based
        /// model class index, −1 for a skipped row. With <see cref="PredictedLabelFormat.Key"/>: an ML.NET key (<c>UInt32</c>,
        /// class + 1, 0 = missing for a skipped row) with the class names as <c>KeyValues</c>. Null omits it.
        /// Default <c>"PredictedLabel"</c>.
        /// </summary>
        public string? PredictedLabelColumnName { get; set; } = Defaults.PredictedLabelColumnName;

        /// <summary>Column of the raw model outputs (logits, no softmax), <c>Vector&lt;Single, classes&gt;</c>. Null omits it. Default <c>"Scores"</c>.</summary>
        public string? ScoresColumnName { get; set; } = Defaults.ScoresColumnName;

        /// <summary>
        /// Optional column of <c>MLImage</c> heat maps (jet colours, map scaled to its maximum) blended over the input image
        /// at the input resolution. Default null (none). Save with <see cref="SaliencyImages.SavePng"/>.
        /// </summary>
        public string? OverlayColumnName { get; set; }

        /// <summary>Opacity of the heat map in the overlay, 0–1. Default 0.5.</summary>
        public float OverlayAlpha { get; set; } = Defaults.OverlayAlpha;

        /// <summary>
        /// Unreadable images, NaN/∞ pixels, missing labels, non-finite model scores. Default <see cref="InvalidRowHandling.Throw"/>:
        /// the cursor or prediction throws. <see cref="InvalidRowHandling.Skip"/>: the row gets an all-zero map and scores,
        /// predicted label −1 (the missing key 0 for a key label) and top-k classes −1, a null overlay and the reason in <see cref="ErrorColumnName"/>.
        /// </summary>
        public InvalidRowHandling InvalidRows { get; set; } = InvalidRowHandling.Throw;

        /// <summary>
        /// Column (<see cref="string"/>, ML.NET text) giving why a row was skipped (<see cref="InvalidRowHandling.Skip"/>), e.g.
        /// <c>the image in column 'Image' could not be read: …</c>; <c>""</c> for every computed row (so always <c>""</c> with
        /// <see cref="InvalidRowHandling.Throw"/>). The stage never writes NaN or ∞: a skipped row's map and scores are zeros,
        /// so this column (or <c>PredictedLabel == -1</c>) is how to tell it apart. Null omits it. Default <c>"SaliencyError"</c>.
        /// </summary>
        public string? ErrorColumnName { get; set; } = Defaults.ErrorColumnName;

        /// <summary>A shallow copy (arrays copied; the factory and module are shared).</summary>
        public Options Clone()
        {
            var copy = (Options)MemberwiseClone();
            copy.Mean = (float[])(Mean?.Clone() ?? Array.Empty<float>());
            copy.Std = (float[])(Std?.Clone() ?? Array.Empty<float>());
            copy.ClassNames = (string[]?)ClassNames?.Clone();
            return copy;
        }
    }
}
