using Google.Protobuf;

namespace Ebp.Onnx.Tests;

/// <summary>External-data references that must be refused, written from the committed external-data fixture.</summary>
[TestClass]
public sealed class ExternalDataTests
{
    private static string Rewrite(Action<global::Onnx.TensorProto> edit)
    {
        var dir = Directory.CreateTempSubdirectory("ebp-onnx-").FullName;
        var source = Fixtures.Path("external/vgg_bn_external.onnx");
        File.Copy(Fixtures.Path("external/vgg_bn_external.weights"), Path.Combine(dir, "vgg_bn_external.weights"));
        var model = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(source));
        edit(model.Graph.Initializer.First(i => i.Name == "features.0.weight"));
        var path = Path.Combine(dir, "model.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    private static void SetEntry(global::Onnx.TensorProto t, string key, string value)
        => t.ExternalData.First(e => e.Key == key).Value = value;

    [TestMethod]
    public void TheUnchangedCopyLoads()
    {
        using var model = OnnxModel.Load(Rewrite(_ => { }));
        Assert.AreEqual(10, model.ClassCount);
        // The files to copy with the model (the ML.NET stage saves them with its pipeline).
        CollectionAssert.AreEqual(new[] { "vgg_bn_external.weights" }, model.ExternalDataFiles.ToArray());
        using var selfContained = OnnxModel.Load(Fixtures.Path("vgg_bn.onnx"));
        Assert.IsEmpty(selfContained.ExternalDataFiles);
    }

    [TestMethod]
    public void AbsoluteLocationIsRefused()
    {
        var path = Rewrite(t => SetEntry(t, "location", "/etc/passwd"));
        var ex = Assert.ThrowsExactly<OnnxImportException>(() => OnnxModel.Load(path));
        StringAssert.Contains(ex.Message, "absolute path");
    }

    [TestMethod]
    public void SymbolicLinkIsRefused()
    {
        var path = Rewrite(t => SetEntry(t, "location", "link.weights"));
        File.CreateSymbolicLink(Path.Combine(Path.GetDirectoryName(path)!, "link.weights"), Path.Combine(Path.GetDirectoryName(path)!, "vgg_bn_external.weights"));
        var ex = Assert.ThrowsExactly<OnnxImportException>(() => OnnxModel.Load(path));
        StringAssert.Contains(ex.Message, "symbolic link");
    }

    [TestMethod]
    public void BlockBeyondTheFileIsRefused()
    {
        var path = Rewrite(t => SetEntry(t, "offset", "999999999"));
        var ex = Assert.ThrowsExactly<OnnxImportException>(() => OnnxModel.Load(path));
        StringAssert.Contains(ex.Message, "does not fit");
    }

    [TestMethod]
    public void ATensorOverTheSizeLimitIsRefusedBeforeReading()
    {
        var ex = Assert.ThrowsExactly<OnnxImportException>(() =>
            OnnxModel.Load(Fixtures.Path("external/vgg_bn_external.onnx"), new OnnxLoadOptions { MaxTensorBytes = 1024 }));
        StringAssert.Contains(ex.Message, "MaxTensorBytes");
    }
}
