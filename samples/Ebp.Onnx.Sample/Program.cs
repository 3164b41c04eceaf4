// One .onnx file, two consumers: ML.NET's ApplyOnnxModel predicts, Ebp explains the same file.
// Usage: dotnet run -c Release --project samples/Ebp.Onnx.Sample -- [model.onnx] [output-folder]
// The default model is the committed test fixture softmax_head.onnx (3×32×32 input, Softmax head, class names).
using Ebp;
using Ebp.Onnx;
using Ebp.Visualization;
using Microsoft.ML;
using Microsoft.ML.Data;
using SkiaSharp;
using TorchSharp;

var modelPath = args.Length > 0 ? args[0] : Path.Combine(AppContext.BaseDirectory, "softmax_head.onnx");
var outDir = args.Length > 1 ? args[1] : Path.Combine("out", "onnx-sample");
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

// ML.NET: the prediction, with ApplyOnnxModel on the file.
var ml = new MLContext(seed: 0);
var schema = SchemaDefinition.Create(typeof(ImageRow));
schema[0].ColumnName = onnx.InputName;
schema[0].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 1, c, h, w);
var data = ml.Data.LoadFromEnumerable(images.Select(p => new ImageRow { Pixels = p }), schema);
var pipeline = ml.Transforms.ApplyOnnxModel(outputColumnNames: [onnx.OutputName], inputColumnNames: [onnx.InputName], modelFile: modelPath);
var scored = pipeline.Fit(data).Transform(data);
var scores = scored.GetColumn<float[]>(onnx.OutputName).ToArray();

// Ebp: the saliency map of the same file, seeded at the logits before the Softmax head.
var explainer = new SaliencyExplainer(onnx.Module);
int agree = 0;
for (int i = 0; i < images.Length; i++)
{
    using var scope = torch.NewDisposeScope();
    var input = torch.tensor(images[i], [1, c, h, w]);
    using var result = explainer.Explain(input, SaliencyTarget.Predicted, new SaliencyOptions
    {
        SaliencyLayer = onnx.Suggested.SaliencyLayer,
        Resize = MapSize.Input,
    });
    int ebpLabel = (int)result.Scores.argmax(1).item<long>();
    int mlLabel = Array.IndexOf(scores[i], scores[i].Max());
    if (ebpLabel == mlLabel) agree++;
    var name = onnx.ClassNames?[mlLabel] ?? mlLabel.ToString();

    using var bitmap = new SKBitmap(w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
        {
            byte V(int ch) => (byte)Math.Clamp(images[i][(Math.Min(ch, c - 1) * h + y) * w + x] * 255, 0, 255);
            bitmap.SetPixel(x, y, new SKColor(V(0), V(1), V(2)));
        }
    var map = result.Map.detach().cpu().flatten().data<float>().ToArray();
    using var overlay = Heatmap.Overlay(bitmap, Heatmap.Normalise(map), w, h);
    var file = Path.Combine(outDir, $"image{i}_{name}.png");
    Figure.SavePng(overlay, file);
    Console.WriteLine($"image {i}: ML.NET predicts {name} (p = {scores[i][mlLabel]:F3}), Ebp explains {ebpLabel} → {file}");
}
Console.WriteLine($"{agree}/{images.Length} predicted labels agree (saliency layer '{onnx.Suggested.SaliencyLayer}', head {onnx.Head}).");
return agree == images.Length ? 0 : 1;

internal sealed class ImageRow
{
    public float[] Pixels { get; set; } = [];
}
