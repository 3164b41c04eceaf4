using Microsoft.ML;
using TorchSharp;

namespace Ebp.MLNet.Tests;

/// <summary>
/// <c>Device = "cuda"</c> through the stage: same maps, scores and predictions as on the CPU. Runs where TorchSharp sees a
/// GPU (<c>dotnet test -p:EbpTorchSharpBackend=cuda-linux</c> on a machine with an NVIDIA driver); Inconclusive elsewhere.
/// </summary>
[TestClass]
public sealed class CudaDeviceTests
{
    [TestMethod]
    public void CudaStage_GivesTheCpuStageResults()
    {
        if (!torch.cuda.is_available())
            Assert.Inconclusive("CUDA is not available here (torch.cuda.is_available() is false). Run on a machine with an NVIDIA GPU " +
                                "and the CUDA backend: dotnet test -p:EbpTorchSharpBackend=cuda-linux.");
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Rows());
        List<SaliencyRow> Run(string device)
        {
            var o = TestData.Options("Pixels", batchSize: 3);
            o.Device = device;
            using var model = TestData.PixelPipeline(ml).Append(ml.Transforms.ComputeSaliency(o)).Fit(data);
            return TestData.Read(ml, model.Transform(data));
        }
        var cpu = Run("cpu");
        var gpu = Run("cuda");
        Assert.HasCount(cpu.Count, gpu);
        for (int i = 0; i < cpu.Count; i++)
        {
            Assert.AreEqual(cpu[i].PredictedLabel, gpu[i].PredictedLabel, $"row {i}");
            Assert.AreEqual("", gpu[i].SaliencyError, $"row {i}");
            float scale = cpu[i].Saliency.Max(Math.Abs);
            for (int k = 0; k < cpu[i].Saliency.Length; k++)
                Assert.AreEqual(cpu[i].Saliency[k], gpu[i].Saliency[k], 1e-4 * scale + 1e-12, $"row {i}, pixel {k}");
            for (int k = 0; k < cpu[i].Scores.Length; k++)
                Assert.AreEqual(cpu[i].Scores[k], gpu[i].Scores[k], 1e-4 * Math.Max(1, Math.Abs(cpu[i].Scores[k])), $"row {i}, score {k}");
        }
    }
}
