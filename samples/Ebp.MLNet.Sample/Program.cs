// Ebp.MLNet sample: a folder of images → LoadImages → ResizeImages → ExtractPixels → ComputeSaliency → overlay PNGs + CSV.
//
//   dotnet run --project samples/Ebp.MLNet.Sample                      # synthetic images, small random VGG: no downloads
//   dotnet run --project samples/Ebp.MLNet.Sample -- IMAGES --arch vgg16 --weights vgg16.safetensors --layer features.23
//   dotnet run --project samples/Ebp.MLNet.Sample -- IMAGES --card models/cluttered-mnist-vgg.json   # the embedded model
//
// Options: --out DIR (default ./saliency-output), --card FILE (a model card: spec, weights, class names, input size,
// saliency layer), --arch NAME, --weights FILE, --layer NAME, --contrast LAYER (contrastive EBP), --size N (model input
// N×N; default: the card's, 224 with --arch, 64 otherwise), --batch N.
using System.CommandLine;
using System.Globalization;
using System.Text;
using CsvHelper;
using CsvHelper.Configuration;
using Ebp;
using Ebp.MLNet;
using Ebp.Models;
using Ebp.Visualization;
using Microsoft.ML;
using Microsoft.ML.Data;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

var settings = Settings.Parse(args);
if (settings is null)
{
    Console.Error.WriteLine("usage: Ebp.MLNet.Sample [IMAGE_FOLDER] [--out DIR] [--card FILE | --arch NAME --weights FILE] [--layer NAME] [--contrast LAYER] [--size N] [--batch N]");
    return 2;
}

Directory.CreateDirectory(settings.Output);
string folder = settings.ImageFolder ?? Synthetic.Write(Path.Combine(settings.Output, "synthetic-images"), count: 6, size: 96);
var files = Directory.EnumerateFiles(folder)
    .Where(ImageFormats.IsImageFile)
    .OrderBy(f => f, StringComparer.Ordinal)
    .ToList();
if (files.Count == 0)
{
    Console.Error.WriteLine($"No images in '{folder}'.");
    return 1;
}

var options = new SaliencyEstimator.Options
{
    InputColumnName = "Pixels",
    ImageWidth = settings.Size,
    ImageHeight = settings.Size,
    BatchSize = settings.Batch,
    OverlayColumnName = "Overlay",
    InvalidRows = InvalidRowHandling.Skip, // an unreadable file becomes an empty row (zeros, label −1), its reason in "SaliencyError"
    PredictedLabelFormat = PredictedLabelFormat.Index, // the 0-based class index; the names come from the transformer
};
if (settings.Card is not null)
{
    // The card gives the architecture, weights, class names and saliency layer; --layer overrides the layer.
    options.ModelCardPath = settings.Card;
    options.SaliencyLayer = settings.Layer;
}
else if (settings.Architecture is not null)
{
    // torchvision weights expect ImageNet normalisation; ExtractPixels gives [0, 1], the stage applies mean/std.
    options.Architecture = settings.Architecture;
    options.WeightsPath = settings.Weights;
    options.Mean = [0.485f, 0.456f, 0.406f];
    options.Std = [0.229f, 0.224f, 0.225f];
    options.SaliencyLayer = settings.Layer ?? "";
    if (settings.Weights is null) Console.WriteLine("note: no --weights given; the model keeps its random initialisation.");
}
else
{
    // A small zoo-style VGG with seeded random weights: the maps are not meaningful, but the whole pipeline runs.
    options.ModelFactory = Synthetic.SmallVgg;
    options.SaliencyLayer = settings.Layer ?? "features.3";
}
if (settings.Contrast is not null)
{
    options.Method = SaliencyMethod.ContrastiveExcitationBackprop;
    options.ContrastLayer = settings.Contrast;
}

var ml = new MLContext(seed: 1);
var data = ml.Data.LoadFromEnumerable(files.Select(f => new ImageInput { ImagePath = Path.GetFileName(f) }));
var images = ml.Transforms.LoadImages("Image", folder, nameof(ImageInput.ImagePath))
    .Append(ml.Transforms.ResizeImages("Image", settings.Size, settings.Size));
// A grey model (one input channel, e.g. the embedded digit classifier) takes one plane: the grey image's red channel.
var pipeline = (settings.Grey
        ? images.Append(ml.Transforms.ConvertToGrayscale("Image"))
                .Append(ml.Transforms.ExtractPixels("Pixels", "Image", Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Red,
                                                    interleavePixelColors: false, scaleImage: 1f / 255))
        : images.Append(ml.Transforms.ExtractPixels("Pixels", "Image", interleavePixelColors: false, scaleImage: 1f / 255)))
    .Append(ml.Transforms.ComputeSaliency(options));

using var model = pipeline.Fit(data);
Console.WriteLine($"{files.Count} images from {folder}; model input {settings.Size}×{settings.Size}; method {options.Method}, layer '{model.LastTransformer.SaliencyLayer}'.");
var classNames = model.LastTransformer.ClassNames;
var view = model.Transform(data);

var csvPath = Path.Combine(settings.Output, "saliency.csv");
using var csvFile = new StreamWriter(csvPath);
using var csv = new CsvWriter(csvFile, new CsvConfiguration(CultureInfo.InvariantCulture) { NewLine = "\n" });
void CsvRow(params string[] fields)
{
    foreach (var f in fields) csv.WriteField(f);
    csv.NextRecord();
}
CsvRow("image", "predicted_class", "score", "target", "peak_x", "peak_y", "overlay", "error");
int mapWidth = model.LastTransformer.MapWidth, mapHeight = model.LastTransformer.MapHeight;
using (var cursor = view.GetRowCursor(view.Schema))
{
    var path = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema[nameof(ImageInput.ImagePath)]);
    var saliency = cursor.GetGetter<VBuffer<float>>(view.Schema["Saliency"]);
    var predicted = cursor.GetGetter<int>(view.Schema["PredictedLabel"]);
    var scores = cursor.GetGetter<VBuffer<float>>(view.Schema["Scores"]);
    var overlay = cursor.GetGetter<MLImage>(view.Schema["Overlay"]);
    var error = cursor.GetGetter<ReadOnlyMemory<char>>(view.Schema["SaliencyError"]);
    ReadOnlyMemory<char> name = default, reason = default;
    VBuffer<float> map = default, score = default;
    while (cursor.MoveNext())
    {
        int cls = 0;
        MLImage? image = null;
        path(ref name);
        saliency(ref map);
        predicted(ref cls);
        scores(ref score);
        overlay(ref image!);
        error(ref reason);
        if (!reason.IsEmpty)
        {
            Console.WriteLine($"  {name}: skipped ({reason})");
            CsvRow(name.ToString(), "", "", "", "", "", "", reason.ToString());
            continue;
        }
        var values = map.DenseValues().ToArray();
        var (px, py) = SaliencyImages.Peak(values, mapWidth, mapHeight);
        var overlayFile = Path.GetFileNameWithoutExtension(name.ToString()) + ".saliency.png";
        SaliencyImages.SavePng(image, Path.Combine(settings.Output, overlayFile));
        image.Dispose();
        float s = score.GetItemOrDefault(cls);
        string label = classNames is null ? cls.ToString(CultureInfo.InvariantCulture) : classNames[cls];
        CsvRow(name.ToString(), label, s.ToString("G6", CultureInfo.InvariantCulture), "predicted", px.ToString(CultureInfo.InvariantCulture),
               py.ToString(CultureInfo.InvariantCulture), overlayFile, "");
        Console.WriteLine(FormattableString.Invariant($"  {name}: class {label} (score {s:G4}), saliency peak at ({px}, {py}) → {overlayFile}"));
    }
}
csv.Flush();
csvFile.Flush();
Console.WriteLine($"Wrote {csvPath} and the overlay PNGs in {Path.GetFullPath(settings.Output)}.");
return 0;


/// <summary>The sample's input row.</summary>
internal sealed class ImageInput
{
    public string ImagePath { get; set; } = "";
}

/// <summary>Command-line settings.</summary>
internal sealed record Settings(string? ImageFolder, string Output, string? Card, bool Grey, string? Architecture, string? Weights, string? Layer, string? Contrast, int Size, int Batch)
{
    public static Settings? Parse(string[] args)
    {
        var folderArgument = new Argument<string?>("IMAGE_FOLDER") { Description = "Folder of images (default: synthetic images).", Arity = ArgumentArity.ZeroOrOne };
        var outOption = new Option<string>("--out") { Description = "Output folder.", DefaultValueFactory = _ => "saliency-output" };
        var cardOption = new Option<string?>("--card") { Description = "A model card: spec, weights, class names, input size, saliency layer." };
        var archOption = new Option<string?>("--arch") { Description = "A zoo architecture (vgg16, resnet50, ...), with --weights." };
        var weightsOption = new Option<string?>("--weights") { Description = "Weights of --arch (safetensors, .pth)." };
        var layerOption = new Option<string?>("--layer") { Description = "Saliency layer." };
        var contrastOption = new Option<string?>("--contrast") { Description = "Contrast layer: contrastive EBP." };
        var sizeOption = new Option<int?>("--size") { Description = "Model input N×N (default: the card's, 224 with --arch, 64 otherwise)." };
        var batchOption = new Option<int>("--batch") { Description = "Rows per forward/backward pass.", DefaultValueFactory = _ => 4 };
        var root = new RootCommand("Ebp.MLNet sample: images → LoadImages → ResizeImages → ExtractPixels → ComputeSaliency → overlay PNGs + CSV.")
        {
            folderArgument, outOption, cardOption, archOption, weightsOption, layerOption, contrastOption, sizeOption, batchOption,
        };
        var parsed = root.Parse(args);
        if (parsed.Action is not null)
        {
            parsed.Invoke();
            return null;
        }
        string? folder = parsed.GetValue(folderArgument), card = parsed.GetValue(cardOption), arch = parsed.GetValue(archOption);
        string? weights = parsed.GetValue(weightsOption), layer = parsed.GetValue(layerOption), contrast = parsed.GetValue(contrastOption);
        string output = parsed.GetValue(outOption)!;
        int? size = parsed.GetValue(sizeOption);
        int batch = parsed.GetValue(batchOption);
        if (size is <= 0 || batch < 1) return null;
        if (folder is not null && !Directory.Exists(folder))
        {
            Console.Error.WriteLine($"Not a folder: '{folder}'.");
            return null;
        }
        if (card is not null && arch is not null) return null;
        int? cardSize = null;
        bool grey = false;
        if (card is not null)
        {
            if (!File.Exists(card))
            {
                Console.Error.WriteLine($"No model card at '{card}'.");
                return null;
            }
            // Only the input size and channel count are used here (for ResizeImages/ExtractPixels); the stage reads the rest.
            Ebp.Models.ModelCard cardFile;
            try
            {
                cardFile = Ebp.Models.ModelCard.Load(card);
            }
            catch (InvalidDataException e)
            {
                Console.Error.WriteLine(e.Message);
                return null;
            }
            if (cardFile.Input.Width > 0) cardSize = cardFile.Input.Width;
            grey = cardFile.Input.Channels == 1;
        }
        return new Settings(folder, output, card, grey, arch, weights, layer, contrast, size ?? cardSize ?? (arch is null ? 64 : 224), batch);
    }
}

/// <summary>Synthetic images and a small random VGG, so the sample runs with no downloads.</summary>
internal static class Synthetic
{
    /// <summary>A small VGG (torchvision layout, names <c>features.N</c> / <c>classifier.N</c>) with seeded weights.</summary>
    public static nn.Module<Tensor, Tensor> SmallVgg()
    {
        var model = new Vgg(new VggConfig([16, "M", 32, "M", 64, "M"], BatchNorm: false, Hidden: 64, NumClasses: 10, PoolHeight: 2, PoolWidth: 2));
        var g = new torch.Generator(42);
        using (torch.no_grad())
        {
            foreach (var (_, p) in model.named_parameters())
            {
                if (p.dim() > 1) p.copy_(torch.randn(p.shape, generator: g) * Math.Sqrt(2.0 / (p.numel() / p.shape[0])));
                else p.zero_();
            }
        }
        model.eval();
        return model;
    }

    /// <summary>Writes <paramref name="count"/> PNGs with a few coloured shapes on plain backgrounds.</summary>
    public static string Write(string folder, int count, int size)
    {
        Directory.CreateDirectory(folder);
        var rnd = new Random(7);
        for (int i = 0; i < count; i++)
        {
            using var bitmap = new SKBitmap(size, size);
            using (var canvas = new SKCanvas(bitmap))
            {
                canvas.Clear(new SKColor((byte)rnd.Next(30, 120), (byte)rnd.Next(30, 120), (byte)rnd.Next(30, 120)));
                for (int k = 0; k < 3; k++)
                {
                    using var paint = new SKPaint { Color = new SKColor((byte)rnd.Next(120, 256), (byte)rnd.Next(120, 256), (byte)rnd.Next(120, 256)), IsAntialias = true };
                    float x = rnd.Next(size / 8, size - size / 8), y = rnd.Next(size / 8, size - size / 8), r = rnd.Next(size / 12, size / 5);
                    if (k % 2 == 0) canvas.DrawCircle(x, y, r, paint);
                    else canvas.DrawRect(x - r, y - r, 2 * r, 1.5f * r, paint);
                }
            }
            using var image = SKImage.FromBitmap(bitmap);
            using var png = image.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(Path.Combine(folder, $"synthetic-{i}.png"), png.ToArray());
        }
        return folder;
    }
}
