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

    /// <summary>The reference's criterion, max|a − e| / max|e| (one home: the conformance runner's).</summary>
    public static double RelativeError(Tensor actual, Tensor expected) => Ebp.Conformance.CaseRunner.RelativeError(actual, expected);
}
