using Ebp.MLNet;
using Ebp.Models;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.MLNet.Tests;

/// <summary>A model with one input channel (e.g. the embedded cluttered-MNIST classifier) takes grey input.</summary>
[TestClass]
public sealed class GreyModelTests
{
    private const string GreySpec = """{"kind":"vgg","cfg":[8,"M",16,"M"],"in_channels":1,"hidden":32,"num_classes":5,"pool_size":2}""";

    private static nn.Module<Tensor, Tensor> GreyModel()
    {
        var model = ModelSpec.Build(GreySpec);
        var g = new Generator(7);
        using (torch.no_grad())
            foreach (var (_, p) in model.named_parameters())
                p.copy_((torch.rand(p.shape, generator: g) - 0.4) * 0.5);
        return model;
    }

    private sealed class GreyPixels
    {
        [VectorType(1, TestData.Size, TestData.Size)] public float[] Pixels { get; set; } = [];
    }

    [TestMethod]
    public void GreyModel_ImageAndVectorInput_EqualTheExplainer()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        // Grey planes as ExtractPixels gives them for a grey conversion: BT.601 luma of the resized image, / 255.
        var rgb = ml.Data.CreateEnumerable<PixelRow>(TestData.PixelPipeline(ml).Fit(data).Transform(data), false).ToList();
        int plane = TestData.Size * TestData.Size;
        var grey = rgb.Select(r => new GreyPixels
        {
            Pixels = Enumerable.Range(0, plane).Select(i => (0.299f * r.Pixels[i] * 255f + 0.587f * r.Pixels[plane + i] * 255f + 0.114f * r.Pixels[2 * plane + i] * 255f) / 255f).ToArray(),
        }).ToList();

        float[][] expected;
        using (var scope = torch.NewDisposeScope())
        using (var model = GreyModel())
        {
            var x = torch.tensor(grey.SelectMany(p => p.Pixels).ToArray(), new long[] { grey.Count, 1, TestData.Size, TestData.Size });
            using var result = new SaliencyExplainer(model).Explain(x, SaliencyTarget.Predicted, new SaliencyOptions { SaliencyLayer = TestData.Layer, Resize = MapSize.Input });
            var maps = result.Map.reshape(grey.Count, plane).data<float>().ToArray();
            expected = Enumerable.Range(0, grey.Count).Select(i => maps.Skip(i * plane).Take(plane).ToArray()).ToArray();
        }

        SaliencyEstimator.Options Options(string input) => new()
        {
            InputColumnName = input, ModelFactory = GreyModel, SaliencyLayer = TestData.Layer,
            ImageWidth = TestData.Size, ImageHeight = TestData.Size, BatchSize = 3,
        };
        using var fromImage = TestData.ImagePipeline(ml).Append(ml.Transforms.ComputeSaliency(Options("Image"))).Fit(data);
        var imageRows = TestData.Read(ml, fromImage.Transform(data));
        var vectors = ml.Data.LoadFromEnumerable(grey);
        using var fromVector = ml.Transforms.ComputeSaliency(Options("Pixels")).Fit(vectors);
        var vectorRows = TestData.Read(ml, fromVector.Transform(vectors));
        for (int i = 0; i < expected.Length; i++)
        {
            TestData.AssertClose(expected[i], vectorRows[i].Saliency, 1e-5, $"vector row {i}");
            TestData.AssertClose(expected[i], imageRows[i].Saliency, 1e-4, $"image row {i}");
        }

        // A 3-channel vector for a grey model is a schema mismatch naming the expected size.
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() =>
            TestData.PixelPipeline(ml).Append(ml.Transforms.ComputeSaliency(Options("Pixels"))).Fit(data));
        StringAssert.Contains(ex.Message, $"Vector<Single, 1, {TestData.Size}, {TestData.Size}>");
    }
}
