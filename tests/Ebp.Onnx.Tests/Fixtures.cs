using Microsoft.ML.OnnxRuntime;
using DenseTensorF = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;
using TorchSharp;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace Ebp.Onnx.Tests;

internal static class Fixtures
{
    public static string Path(string name) => System.IO.Path.Combine(AppContext.BaseDirectory, "TestData", name);

    /// <summary>ONNX Runtime's output for <paramref name="input"/> (the graph output, after any head).</summary>
    public static Tensor RunOrt(string model, string inputName, Tensor input)
    {
        using var session = new InferenceSession(model);
        var data = input.contiguous().data<float>().ToArray();
        var dense = new DenseTensorF(data, input.shape.Select(d => (int)d).ToArray());
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(inputName, dense)]);
        var output = results.First().AsTensor<float>();
        return torch.tensor(output.ToArray(), output.Dimensions.ToArray().Select(d => (long)d).ToArray());
    }

    public static double RelativeError(Tensor actual, Tensor expected)
    {
        using var scope = torch.NewDisposeScope();
        var a = actual.to(ScalarType.Float64);
        var e = expected.to(ScalarType.Float64);
        double scale = e.abs().max().item<double>();
        double diff = (a - e).abs().max().item<double>();
        return scale == 0 ? diff : diff / scale;
    }
}
