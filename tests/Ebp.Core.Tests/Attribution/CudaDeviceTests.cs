using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Attribution;

/// <summary>
/// The engine on a CUDA model gives the CPU's maps. Runs where TorchSharp sees a GPU (a CUDA backend package, e.g.
/// <c>dotnet test -p:EbpTorchSharpBackend=cuda-linux</c>, and an NVIDIA driver); Inconclusive elsewhere.
/// </summary>
[TestClass]
public sealed class CudaDeviceTests
{
    internal static void RequireCuda()
    {
        if (!torch.cuda.is_available())
            Assert.Inconclusive("CUDA is not available here (torch.cuda.is_available() is false). Run on a machine with an NVIDIA GPU " +
                                "and the CUDA backend: dotnet test -p:EbpTorchSharpBackend=cuda-linux.");
    }

    [TestMethod]
    [DataRow(SaliencyMethod.ExcitationBackprop, "")]
    [DataRow(SaliencyMethod.ExcitationBackprop, "2")]
    [DataRow(SaliencyMethod.ContrastiveExcitationBackprop, "2")]
    [DataRow(SaliencyMethod.Gradient, "")]
    public void CudaModel_GivesTheCpuMap(SaliencyMethod method, string layer)
    {
        RequireCuda();
        var options = new SaliencyOptions
        {
            Method = method,
            SaliencyLayer = layer,
            ContrastLayer = method == SaliencyMethod.ContrastiveExcitationBackprop ? "8" : null,
        };
        using var cpuModel = TestModels.BiasFreeCnn(21);
        using var gpuModel = TestModels.BiasFreeCnn(21).to(torch.CUDA);
        using var x = TestModels.Image(22, 2, 3, 16, 16);
        using var onCpu = new SaliencyExplainer(cpuModel).Explain(x, SaliencyTarget.Classes(1, 3), options);
        // The input stays on the CPU: the explainer moves it to the model's device.
        using var onGpu = new SaliencyExplainer(gpuModel).Explain(x, SaliencyTarget.Classes(1, 3), options);

        Assert.AreEqual(DeviceType.CUDA, onGpu.Map.device_type, "the map is computed on the model's device");
        Assert.AreEqual(DeviceType.CUDA, gpuModel.parameters().First().device_type, "the model stays on its device");
        using var gpuMap = onGpu.Map.cpu();
        double scale = onCpu.Map.abs().max().item<float>();
        double error = (gpuMap - onCpu.Map).abs().max().item<float>() / scale;
        Assert.IsTrue(error <= 1e-4, $"{method} at '{layer}': max|gpu − cpu| / max|cpu| = {error:E2}");
        if (method == SaliencyMethod.ExcitationBackprop)
            for (int i = 0; i < 2; i++)
                Assert.AreEqual(1.0, gpuMap[i].sum().item<float>(), 1e-4, "a one-hot EBP map of a bias-free model sums to 1");
    }
}
