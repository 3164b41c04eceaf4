namespace Ebp.Onnx.Tests;

/// <summary>Hostile or broken files: a clear error, nothing built.</summary>
[TestClass]
public sealed class BadFileTests
{
    [TestMethod]
    [DataRow("bad/truncated.onnx", "not a readable ONNX model")]
    [DataRow("bad/not_protobuf.onnx", "ONNX model")]
    [DataRow("bad/unsupported_op.onnx", "(op CumSum, opset 13)")]
    [DataRow("bad/missing_initializer.onnx", "fc1.weight")]
    [DataRow("bad/two_inputs.onnx", "2 inputs ('a', 'b')")]
    [DataRow("bad/dynamic_shape.onnx", "dynamic dimension 2")]
    [DataRow("bad/external_outside.onnx", "outside the model's folder")]
    public void BadFileIsAClearError(string fixture, string message)
    {
        var ex = Assert.ThrowsExactly<OnnxImportException>(() => OnnxModel.Load(Fixtures.Path(fixture)));
        StringAssert.Contains(ex.Message, message);
    }

    [TestMethod]
    public void UnsupportedOpErrorListsTheSupportedOnes()
    {
        var ex = Assert.ThrowsExactly<OnnxImportException>(() => OnnxModel.Load(Fixtures.Path("bad/unsupported_op.onnx")));
        StringAssert.Contains(ex.Message, "Supported operators: Add, AveragePool");
    }

    [TestMethod]
    public void DynamicShapeLoadsWhenTheCallerFixesIt()
    {
        using var model = OnnxModel.Load(Fixtures.Path("bad/dynamic_shape.onnx"), new OnnxLoadOptions { InputShape = [1, 3, 16, 16] });
        Assert.AreEqual(10, model.ClassCount);
    }
}
