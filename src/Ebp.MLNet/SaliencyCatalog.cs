using Ebp;
using Ebp.MLNet;
using Ebp.MLNet.Internal;
using TorchSharp;
using static TorchSharp.torch;

// ML.NET's convention: extension catalogs (ImageEstimatorsCatalog, OnnxCatalog, …) live in the Microsoft.ML namespace,
// so `using Microsoft.ML;` is enough to find mlContext.Transforms.ComputeSaliency.
namespace Microsoft.ML;

/// <summary>
/// <c>mlContext.Transforms.ComputeSaliency(...)</c>: Excitation Backprop saliency maps as an ML.NET transform
/// (see <see cref="SaliencyEstimator"/>).
/// </summary>
public static class SaliencyCatalog
{
    /// <summary>
    /// Adds a saliency map column computed with a described model: a model card (one line for the embedded model:
    /// <c>ComputeSaliency(modelCard: "models/cluttered-mnist-vgg.json")</c>), an Ebp model spec, or a
    /// <see cref="Ebp.Models.ModelZoo"/> architecture, with a weight file.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="outputColumnName">The saliency column, <c>Vector&lt;Single, H, W&gt;</c>.</param>
    /// <param name="inputColumnName">The image column (<c>MLImage</c>, or planar float pixels of size C·H·W). Null means <c>"Image"</c>.</param>
    /// <param name="architecture">A <see cref="Ebp.Models.ModelZoo"/> name: <c>vgg16</c>, <c>resnet50</c>, …</param>
    /// <param name="weightsPath">The weight file (safetensors, <c>.pth</c> state_dict or TorchSharp format); null keeps random
    /// weights, or with <paramref name="modelCard"/> the card's weight file.</param>
    /// <param name="saliencyLayer">Module whose output receives the map (<c>features.16</c>, <c>layer2</c>); <c>""</c> = the input.
    /// Null: the model card's saliency layer, or the input.</param>
    /// <param name="method">Excitation Backprop (default) or contrastive EBP (then give <paramref name="contrastLayer"/>).</param>
    /// <param name="contrastLayer">Contrastive EBP only: e.g. <c>classifier.4</c> for VGG16, <c>avgpool</c> for ResNet.</param>
    /// <param name="imageWidth">Model input width; null: the model card's, or 224.</param>
    /// <param name="imageHeight">Model input height; null: the model card's, or 224.</param>
    /// <param name="numClasses">The architecture's number of classes (<paramref name="architecture"/> only).</param>
    /// <param name="batchSize">Rows per forward/backward pass.</param>
    /// <param name="modelCard">A model card JSON file (spec, weight file, class names, input size, saliency layer).</param>
    /// <param name="modelSpecJson">An Ebp model spec (JSON text), with <paramref name="weightsPath"/>.</param>
    /// <param name="onnxModelPath">An ONNX image classifier (<c>.onnx</c>, as for <c>ApplyOnnxModel</c>): input size and class
    /// names from the file, and the importer's suggested layers unless <paramref name="saliencyLayer"/> /
    /// <paramref name="contrastLayer"/> are given: <c>ComputeSaliency(onnxModelPath: "resnet50.onnx")</c>.</param>
    /// <remarks>Give exactly one of <paramref name="onnxModelPath"/>, <paramref name="modelCard"/>, <paramref name="modelSpecJson"/> and <paramref name="architecture"/>.
    /// Other settings (normalisation, target, output columns, device, overlay, invalid rows) take the
    /// <see cref="SaliencyEstimator.Options"/> defaults; use the <see cref="ComputeSaliency(TransformsCatalog, SaliencyEstimator.Options)"/>
    /// overload to change them.</remarks>
    public static SaliencyEstimator ComputeSaliency(this TransformsCatalog catalog,
        string outputColumnName = SaliencyEstimator.Defaults.OutputColumnName,
        string? inputColumnName = null,
        string? architecture = null,
        string? weightsPath = null,
        string? saliencyLayer = null,
        SaliencyMethod method = SaliencyMethod.ExcitationBackprop,
        string? contrastLayer = null,
        int? imageWidth = null,
        int? imageHeight = null,
        int numClasses = SaliencyEstimator.Defaults.NumClasses,
        int batchSize = SaliencyEstimator.Defaults.BatchSize,
        string? modelCard = null,
        string? modelSpecJson = null,
        string? onnxModelPath = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        if (architecture is null && modelCard is null && modelSpecJson is null && onnxModelPath is null)
            throw new ArgumentException(
                "Name the model: onnxModelPath = an .onnx file, modelCard = a model card JSON file (e.g. \"models/cluttered-mnist-vgg.json\"), modelSpecJson = an Ebp model spec " +
                "with weightsPath, or architecture = a ModelZoo name (e.g. \"vgg16\") with weightsPath; or use the overload taking a model factory or SaliencyEstimator.Options.",
                nameof(architecture));
        return new SaliencyEstimator(new SaliencyEstimator.Options
        {
            OutputColumnName = outputColumnName,
            InputColumnName = inputColumnName,
            Architecture = architecture,
            ModelCardPath = modelCard,
            ModelSpecJson = modelSpecJson,
            OnnxModelPath = onnxModelPath,
            WeightsPath = weightsPath,
            NumClasses = numClasses,
            SaliencyLayer = saliencyLayer,
            Method = method,
            ContrastLayer = contrastLayer,
            ImageWidth = imageWidth,
            ImageHeight = imageHeight,
            BatchSize = batchSize,
        }, StageLog.EnvironmentOf(catalog));
    }

    /// <summary>Adds a saliency map column computed with models made by <paramref name="modelFactory"/>.</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="modelFactory">Creates a model instance with its weights (called again for each extra concurrent cursor;
    /// extra instances get the first instance's weights).</param>
    /// <param name="outputColumnName">The saliency column.</param>
    /// <param name="inputColumnName">The image column; null means <c>"Image"</c>.</param>
    /// <param name="saliencyLayer">Module whose output receives the map; <c>""</c> = the input.</param>
    /// <param name="method">The saliency method.</param>
    /// <param name="contrastLayer">Contrastive EBP only: the contrast layer.</param>
    /// <param name="imageWidth">Model input width.</param>
    /// <param name="imageHeight">Model input height.</param>
    /// <param name="batchSize">Rows per forward/backward pass.</param>
    public static SaliencyEstimator ComputeSaliency(this TransformsCatalog catalog,
        Func<nn.Module<Tensor, Tensor>> modelFactory,
        string outputColumnName = SaliencyEstimator.Defaults.OutputColumnName,
        string? inputColumnName = null,
        string saliencyLayer = "",
        SaliencyMethod method = SaliencyMethod.ExcitationBackprop,
        string? contrastLayer = null,
        int imageWidth = SaliencyEstimator.Defaults.ImageSize,
        int imageHeight = SaliencyEstimator.Defaults.ImageSize,
        int batchSize = SaliencyEstimator.Defaults.BatchSize)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(modelFactory);
        return new SaliencyEstimator(new SaliencyEstimator.Options
        {
            OutputColumnName = outputColumnName,
            InputColumnName = inputColumnName,
            ModelFactory = modelFactory,
            SaliencyLayer = saliencyLayer,
            Method = method,
            ContrastLayer = contrastLayer,
            ImageWidth = imageWidth,
            ImageHeight = imageHeight,
            BatchSize = batchSize,
        }, StageLog.EnvironmentOf(catalog));
    }

    /// <summary>Adds saliency columns as configured by <paramref name="options"/> (all settings, documented defaults).</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="options">The settings; copied, so later changes do not affect the estimator.</param>
    public static SaliencyEstimator ComputeSaliency(this TransformsCatalog catalog, SaliencyEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new SaliencyEstimator(options, StageLog.EnvironmentOf(catalog));
    }
}
