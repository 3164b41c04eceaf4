// One .onnx file, two consumers: ML.NET's ApplyOnnxModel predicts, Ebp explains the same file.
// Usage: dotnet run -c Release --project samples/Ebp.Onnx.Sample -- [model.onnx] [output-folder]
// The default model is the committed test fixture softmax_head.onnx (3×32×32 input, Softmax head, class names).
using System.CommandLine;
using Ebp;
using Ebp.MLNet;
using Ebp.Onnx;
using Ebp.Visualization;
using Microsoft.ML;
using Microsoft.ML.Data;
using SkiaSharp;

var modelArgument = new Argument<string?>("MODEL") { Description = "An .onnx image classifier with a [1, C, H, W] input (default: the committed softmax_head.onnx).", Arity = ArgumentArity.ZeroOrOne };
var outArgument = new Argument<string?>("OUTPUT") { Description = "Folder for the overlay PNGs (default: out/onnx-sample).", Arity = ArgumentArity.ZeroOrOne };
var root = new RootCommand("One .onnx file, one ML.NET pipeline: ApplyOnnxModel predicts, ComputeSaliency explains the same file.") { modelArgument, outArgument };
var parsed = root.Parse(args);
// Without an action of our own, the parse result has one only for --help or a parse error: print and stop.
if (parsed.Action is not null) return parsed.Invoke() == 0 ? 0 : 2;
var modelPath = parsed.GetValue(modelArgument) ?? Path.Combine(AppContext.BaseDirectory, "softmax_head.onnx");
var outDir = parsed.GetValue(outArgument) ?? Path.Combine("out", "onnx-sample");
Directory.CreateDirectory(outDir);

using var onnx = OnnxModel.Load(modelPath);
var shape = onnx.InputShape.ToArray();
if (shape.Length != 4 || shape[0] != 1)
{
    Console.Error.WriteLine($"The sample expects a [1, C, H, W] input; '{onnx.InputName}' is [{string.Join(", ", shape)}].");
    return 2;
}
int c = (int)shape[1], h = (int)shape[2], w = (int)shape[3];

// A few synthetic images: a bright square at a different place in each (values in [0, 1]).
var rng = new Random(3);
var images = Enumerable.Range(0, 4).Select(i =>
{
    var px = new float[c * h * w];
    int x0 = rng.Next(0, w / 2), y0 = rng.Next(0, h / 2);
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                px[(ch * h + y) * w + x] = 0.1f * (float)rng.NextDouble() + (x >= x0 && x < x0 + w / 2 && y >= y0 && y < y0 + h / 2 ? 0.8f : 0f);
    return px;
}).ToArray();

// One ML.NET pipeline over the same file: ApplyOnnxModel predicts (ONNX Runtime), ComputeSaliency explains (Ebp's
// import of the file, seeded at the logits before the Softmax head, at the importer's suggested layer).
var ml = new MLContext(seed: 0);
var schema = SchemaDefinition.Create(typeof(ImageRow));
schema[nameof(ImageRow.Pixels)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, c, h, w);
var onnxColumn = schema[nameof(ImageRow.OnnxInput)];
onnxColumn.ColumnType = new VectorDataViewType(NumberDataViewType.Single, 1, c, h, w);
onnxColumn.ColumnName = onnx.InputName;
var data = ml.Data.LoadFromEnumerable(images.Select(p => new ImageRow { Pixels = p, OnnxInput = p }), schema);
var pipeline = ml.Transforms.ApplyOnnxModel(outputColumnNames: [onnx.OutputName], inputColumnNames: [onnx.InputName], modelFile: modelPath)
    .Append(ml.Transforms.ComputeSaliency(new SaliencyEstimator.Options
    {
        InputColumnName = nameof(ImageRow.Pixels),
        OnnxModelPath = modelPath,
        PredictedLabelFormat = PredictedLabelFormat.Index,
    }));
var scored = pipeline.Fit(data).Transform(data);
var probabilities = scored.GetColumn<float[]>(onnx.OutputName).ToArray();
var ebpLabels = scored.GetColumn<int>("PredictedLabel").ToArray();
var maps = scored.GetColumn<float[]>("Saliency").ToArray();

int agree = 0;
for (int i = 0; i < images.Length; i++)
{
    int mlLabel = Array.IndexOf(probabilities[i], probabilities[i].Max());
    if (ebpLabels[i] == mlLabel) agree++;
    var name = onnx.ClassNames?[mlLabel] ?? mlLabel.ToString();

    using var bitmap = new SKBitmap(w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
        {
            byte V(int ch) => (byte)Math.Clamp(images[i][(Math.Min(ch, c - 1) * h + y) * w + x] * 255, 0, 255);
            bitmap.SetPixel(x, y, new SKColor(V(0), V(1), V(2)));
        }
    using var overlay = Heatmap.Overlay(bitmap, Heatmap.Normalise(maps[i]), w, h);
    var file = Path.Combine(outDir, $"image{i}_{name}.png");
    Figure.SavePng(overlay, file);
    Console.WriteLine($"image {i}: ApplyOnnxModel predicts {name} (p = {probabilities[i][mlLabel]:F3}), ComputeSaliency explains {ebpLabels[i]} → {file}");
}
Console.WriteLine($"{agree}/{images.Length} predicted labels agree (saliency layer '{onnx.Suggested.SaliencyLayer}', head {onnx.Head}).");
return agree == images.Length ? 0 : 1;

internal sealed class ImageRow
{
    public float[] Pixels { get; set; } = [];
    public float[] OnnxInput { get; set; } = [];
}
