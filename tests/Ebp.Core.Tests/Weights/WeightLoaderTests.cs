using System.Text;
using System.Text.Json;
using Ebp.Models;
using Ebp.Weights;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Weights;

[TestClass]
public sealed class WeightLoaderTests
{
    private static bool BitEqual(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.contiguous().bytes.SequenceEqual(b.contiguous().bytes);

    private static string ReferenceDir => Path.Combine(AppContext.BaseDirectory, "TestData", "reference");
    private static string ReferenceFile(string name) => Path.Combine(ReferenceDir, name + ".safetensors");

    private const string SmallResNet = """{"kind":"resnet","block":"basic","layers":[1,1,1,1],"width":8,"num_classes":10,"in_channels":3}""";
    private const string SmallVggBn = """{"kind":"vgg","cfg":[8,"M",16,"M",32,32,"M"],"batch_norm":true,"in_channels":3,"hidden":64,"num_classes":10,"pool_size":[2,2]}""";

    private string _tempDir = "";

    [TestInitialize]
    public void Init()
    {
        _tempDir = Path.Combine(Path.GetTempPath(), "ebp-weights-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_tempDir);
    }

    [TestCleanup]
    public void Cleanup()
    {
        try { Directory.Delete(_tempDir, recursive: true); } catch (IOException) { }
    }

    private static Dictionary<string, byte[]> Snapshot(nn.Module model) =>
        model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.bytes.ToArray());

    private static void AssertUnchanged(Dictionary<string, byte[]> before, nn.Module model)
    {
        var after = Snapshot(model);
        CollectionAssert.AreEquivalent(before.Keys.ToList(), after.Keys.ToList());
        foreach (var (k, v) in before)
            CollectionAssert.AreEqual(v, after[k], $"{k} changed");
    }

    private static void AssertSameState(nn.Module expected, nn.Module actual)
    {
        var a = expected.state_dict();
        var b = actual.state_dict();
        CollectionAssert.AreEquivalent(a.Keys.ToList(), b.Keys.ToList());
        foreach (var (k, v) in a)
            Assert.IsTrue(BitEqual(v, b[k]), $"{k} differs");
    }

    /// <summary>A state dict equal to the model's own (cloned), for edits.</summary>
    private static Dictionary<string, Tensor> CloneState(nn.Module model) =>
        model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());

    [TestMethod]
    public void MismatchListsEveryOffenderAndLeavesModelUntouched()
    {
        using var model = ModelSpec.Build(SmallResNet);
        using var other = ModelSpec.Build(SmallResNet);
        var sd = CloneState(other);
        sd.Remove("layer3.0.bn2.running_var");                       // missing
        sd["layer9.0.conv1.weight"] = zeros(3, 3);                   // unexpected
        sd["fc.weight"].Dispose();
        sd["fc.weight"] = zeros(7, 64);                              // wrong shape (model: [10, 64])
        sd["layer1.0.conv2.weight"] = zeros(new long[] { 8, 8, 3, 3 }, dtype: ScalarType.Int64); // not floating

        var before = Snapshot(model);
        var e = Assert.ThrowsExactly<StateDictMismatchException>(() => WeightLoader.LoadStateDict(model, sd));
        StringAssert.Contains(e.Message, "layer3.0.bn2.running_var");
        StringAssert.Contains(e.Message, "layer9.0.conv1.weight");
        StringAssert.Contains(e.Message, "fc.weight: model [10, 64], weights [7, 64]");
        StringAssert.Contains(e.Message, "layer1.0.conv2.weight: model Float32, weights Int64");
        StringAssert.Contains(e.Message, "strict: false");
        CollectionAssert.AreEqual(new[] { "layer3.0.bn2.running_var" }, e.MissingKeys.ToArray());
        CollectionAssert.AreEqual(new[] { "layer9.0.conv1.weight" }, e.UnexpectedKeys.ToArray());
        Assert.AreEqual(1, e.ShapeMismatches.Count);
        Assert.AreEqual(1, e.DtypeMismatches.Count);
        AssertUnchanged(before, model);
        foreach (var t in sd.Values) t.Dispose();
    }

    [TestMethod]
    public void NonStrictIgnoresMissingAndUnexpectedButNotShapes()
    {
        using var model = ModelSpec.Build(SmallResNet);
        using var other = ModelSpec.Build(SmallResNet);
        var sd = CloneState(other);
        sd.Remove("fc.bias");
        sd["extra.weight"] = zeros(2);
        var result = WeightLoader.LoadStateDict(model, sd, strict: false);
        CollectionAssert.Contains(result.MissingKeys.ToArray(), "fc.bias");
        CollectionAssert.AreEqual(new[] { "extra.weight" }, result.UnexpectedKeys.ToArray());
        Assert.IsTrue(BitEqual(model.state_dict()["fc.weight"], other.state_dict()["fc.weight"]));
        Assert.IsFalse(BitEqual(model.state_dict()["fc.bias"], other.state_dict()["fc.bias"]));

        sd["fc.weight"] = zeros(10, 63);
        var before = Snapshot(model);
        var e = Assert.ThrowsExactly<StateDictMismatchException>(() => WeightLoader.LoadStateDict(model, sd, strict: false));
        StringAssert.Contains(e.Message, "fc.weight");
        AssertUnchanged(before, model);
    }

    [TestMethod]
    public void NumBatchesTrackedMayBeMissingAndDoubleIsConverted()
    {
        using var model = ModelSpec.Build(SmallVggBn);
        using var other = ModelSpec.Build(SmallVggBn);
        var sd = other.state_dict()
            .Where(kv => !kv.Key.EndsWith("num_batches_tracked", StringComparison.Ordinal))
            .ToDictionary(kv => "net." + kv.Key, kv => kv.Value.to(ScalarType.Float64));
        var result = WeightLoader.LoadStateDict(model, sd, prefix: "net");
        Assert.AreEqual(4, result.MissingKeys.Count); // four BatchNorm counters
        Assert.IsTrue(result.MissingKeys.All(k => k.EndsWith(".num_batches_tracked", StringComparison.Ordinal)));
        AssertSameState(other, model);
        Assert.AreEqual(ScalarType.Float32, model.state_dict()["features.0.weight"].dtype);
    }

    [TestMethod]
    public void WrongPrefixExplainsWhatKeysLookLike()
    {
        using var model = ModelSpec.Build(SmallResNet);
        var before = Snapshot(model);
        var e = Assert.ThrowsExactly<InvalidDataException>(() =>
            WeightLoader.Load(model, ReferenceFile("resnet_basic_ebp_layer2"), prefix: "net.", strict: true));
        StringAssert.Contains(e.Message, "resnet_basic_ebp_layer2.safetensors");
        StringAssert.Contains(e.Message, "model.conv1.weight");
        StringAssert.Contains(e.Message, "prefix");
        Assert.IsInstanceOfType<StateDictMismatchException>(e.InnerException);
        AssertUnchanged(before, model);
    }

    [TestMethod]
    public void ReferenceFileWithoutPrefixHasUnexpectedNonModelTensors()
    {
        using var model = ModelSpec.Build(SmallResNet);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => WeightLoader.Load(model, ReferenceFile("resnet_basic_ebp_layer2")));
        var inner = (StateDictMismatchException)e.InnerException!;
        CollectionAssert.IsSubsetOf(new[] { "input", "target", "expected" }, inner.UnexpectedKeys.ToArray());
    }

    [TestMethod]
    public void ReadSafetensorsReadsReferenceVectors()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(ReferenceDir, "cases.json")));
        foreach (var c in doc.RootElement.EnumerateArray())
        {
            string name = c.GetProperty("name").GetString()!;
            string path = Path.Combine(ReferenceDir, c.GetProperty("file").GetString()!);
            using var t = WeightLoader.ReadSafetensors(path);
            var inputShape = c.GetProperty("input_shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var expectedShape = c.GetProperty("expected_shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            CollectionAssert.AreEqual(inputShape, t["input"].shape, name);
            CollectionAssert.AreEqual(expectedShape, t["expected"].shape, name);
            Assert.AreEqual(ScalarType.Float32, t["expected"].dtype, name);
            Assert.IsFalse(t.ContainsKey("__metadata__"));
            if (c.GetProperty("target_gradient").GetBoolean())
            {
                Assert.AreEqual(ScalarType.Float32, t["target_gradient"].dtype, name);
                Assert.IsFalse(t.ContainsKey("target"), name);
            }
            else
            {
                var target = t["target"];
                Assert.AreEqual(ScalarType.Int64, target.dtype, name);
                var expectedTarget = c.GetProperty("target").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                CollectionAssert.AreEqual(expectedTarget, target.data<long>().ToArray(), name);
            }
            Assert.AreEqual(name, WeightLoader.ReadSafetensorsMetadata(path)["case"]);
        }
    }

    [TestMethod]
    public void ReadSafetensorsValuesMatchTheRawBytes()
    {
        string path = ReferenceFile("seq_conv1d_ebp_input");
        using var t = WeightLoader.ReadSafetensors(path);
        var bytes = File.ReadAllBytes(path);
        long n = BitConverter.ToInt64(bytes, 0);
        using var header = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 8, (int)n));
        var input = header.RootElement.GetProperty("input");
        long begin = input.GetProperty("data_offsets")[0].GetInt64();
        float first = BitConverter.ToSingle(bytes, (int)(8 + n + begin));
        Assert.AreEqual(first, t["input"].flatten()[0].item<float>());
    }

    private static byte[] HandWrittenSafetensors(string metadataJson)
    {
        // a: F32 [2, 2] = 1, 2, 3, 4; t: I64 [3] = 5, -6, 7
        var data = new List<byte>();
        foreach (var f in new[] { 1f, 2f, 3f, 4f }) data.AddRange(BitConverter.GetBytes(f));
        foreach (var l in new[] { 5L, -6L, 7L }) data.AddRange(BitConverter.GetBytes(l));
        string header = "{\"__metadata__\":" + metadataJson +
            ",\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}" +
            ",\"t\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[16,40]}}";
        while (header.Length % 8 != 0) header += " ";
        return [.. BitConverter.GetBytes((ulong)header.Length), .. Encoding.UTF8.GetBytes(header), .. data];
    }

    [TestMethod]
    [DataRow("{\"case\":\"x\"}")]
    [DataRow("{\"shape\":\"not a list\",\"dtype\":\"?\"}")]
    public void HandWrittenSafetensorsReadsExactValues(string metadata)
    {
        string path = Path.Combine(_tempDir, "hand.safetensors");
        File.WriteAllBytes(path, HandWrittenSafetensors(metadata));
        using var t = WeightLoader.ReadSafetensors(path);
        CollectionAssert.AreEqual(new[] { "a", "t" }, t.Keys.ToArray());
        CollectionAssert.AreEqual(new long[] { 2, 2 }, t["a"].shape);
        CollectionAssert.AreEqual(new[] { 1f, 2f, 3f, 4f }, t["a"].data<float>().ToArray());
        Assert.AreEqual(ScalarType.Int64, t["t"].dtype);
        CollectionAssert.AreEqual(new[] { 5L, -6L, 7L }, t["t"].data<long>().ToArray());
    }

    [TestMethod]
    public void TruncatedSafetensorsDataIsInvalidDataNamingTheFile()
    {
        string path = Path.Combine(_tempDir, "truncated.safetensors");
        var bytes = File.ReadAllBytes(ReferenceFile("vgg_bn_ebp_mid"));
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        using var model = ModelSpec.Build(SmallVggBn);
        var before = Snapshot(model);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => WeightLoader.Load(model, path, "model."));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "truncated");
        AssertUnchanged(before, model);
        Assert.ThrowsExactly<InvalidDataException>(() => WeightLoader.ReadSafetensors(path));
    }

    [TestMethod]
    public void TruncatedSafetensorsHeaderIsInvalidDataNamingTheFile()
    {
        string path = Path.Combine(_tempDir, "header.safetensors");
        var bytes = File.ReadAllBytes(ReferenceFile("vgg_bn_ebp_mid"));
        File.WriteAllBytes(path, bytes[..100]);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => WeightLoader.ReadSafetensors(path));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "header length");
    }

    [TestMethod]
    public void CorruptSafetensorsHeaderIsInvalidData()
    {
        var bytes = File.ReadAllBytes(ReferenceFile("seq_conv1d_ebp_input"));
        long n = BitConverter.ToInt64(bytes, 0);

        // Bad JSON: break a brace in the middle of the header.
        var badJson = (byte[])bytes.Clone();
        badJson[8 + n / 2] = (byte)'}';
        badJson[8 + n / 2 + 1] = (byte)'"';
        string p1 = Path.Combine(_tempDir, "badjson.safetensors");
        File.WriteAllBytes(p1, badJson);
        var e1 = Assert.ThrowsExactly<InvalidDataException>(() => WeightLoader.ReadSafetensors(p1));
        StringAssert.Contains(e1.Message, p1);

        // Header length beyond the end of the file.
        var badLen = (byte[])bytes.Clone();
        BitConverter.GetBytes((ulong)bytes.Length * 2).CopyTo(badLen, 0);
        string p2 = Path.Combine(_tempDir, "badlen.safetensors");
        File.WriteAllBytes(p2, badLen);
        var e2 = Assert.ThrowsExactly<InvalidDataException>(() => WeightLoader.ReadSafetensors(p2));
        StringAssert.Contains(e2.Message, "runs past the end of the file");

        // Inconsistent offsets (shape says more bytes than data_offsets span).
        string header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        string p3 = Path.Combine(_tempDir, "badshape.safetensors");
        string newHeader = header.Replace("\"shape\":[2,3,64]", "\"shape\":[2,3,65]");
        Assert.AreNotEqual(header, newHeader, "test setup: input shape not found in header");
        File.WriteAllBytes(p3, [.. bytes[..8], .. Encoding.UTF8.GetBytes(newHeader), .. bytes[(int)(8 + n)..]]);
        var e3 = Assert.ThrowsExactly<InvalidDataException>(() => WeightLoader.ReadSafetensors(p3));
        StringAssert.Contains(e3.Message, "input");
    }

    [TestMethod]
    public void MissingFileIsFileNotFound()
    {
        string path = Path.Combine(_tempDir, "nope.safetensors");
        using var model = ModelSpec.Build(SmallResNet);
        var e = Assert.ThrowsExactly<FileNotFoundException>(() => WeightLoader.Load(model, path));
        StringAssert.Contains(e.Message, path);
        Assert.AreEqual(path, e.FileName);
        Assert.ThrowsExactly<FileNotFoundException>(() => WeightLoader.ReadSafetensors(path));
    }

    [TestMethod]
    public void GarbageAndEmptyFilesAreInvalidData()
    {
        string empty = Path.Combine(_tempDir, "empty.bin");
        File.WriteAllBytes(empty, []);
        string garbage = Path.Combine(_tempDir, "garbage.pth");
        File.WriteAllText(garbage, "this is not a weight file at all");
        string legacy = Path.Combine(_tempDir, "legacy.pth");
        File.WriteAllBytes(legacy, [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
        string badZip = Path.Combine(_tempDir, "bad.pt");
        File.WriteAllBytes(badZip, [(byte)'P', (byte)'K', 3, 4, 1, 2, 3, 4, 5, 6, 7, 8]);
        using var model = ModelSpec.Build(SmallResNet);
        var before = Snapshot(model);
        foreach (var p in new[] { empty, garbage, legacy, badZip })
        {
            var e = Assert.ThrowsExactly<InvalidDataException>(() => WeightLoader.Load(model, p), p);
            StringAssert.Contains(e.Message, p);
        }
        Assert.AreEqual(WeightFileFormat.PyTorchLegacy, WeightLoader.DetectFormat(legacy));
        Assert.AreEqual(WeightFileFormat.PyTorchZip, WeightLoader.DetectFormat(badZip));
        AssertUnchanged(before, model);
    }

    [TestMethod]
    public void PyTorchFileWrittenBySavePyLoadsBackEqual()
    {
        string path = Path.Combine(_tempDir, "weights.pth");
        using var source = ModelSpec.Build(SmallVggBn);
        source.save_py(path);
        Assert.AreEqual(WeightFileFormat.PyTorchZip, WeightLoader.DetectFormat(path));
        using var target = ModelSpec.Build(SmallVggBn);
        var result = WeightLoader.Load(target, path);
        Assert.AreEqual(0, result.MissingKeys.Count);
        AssertSameState(source, target);
    }

    [TestMethod]
    public void SafetensorsWrittenBySaveSafetensorsLoadsBackEqual()
    {
        // Deliberately misleading extension: the format comes from the bytes.
        string path = Path.Combine(_tempDir, "weights.bin");
        using var source = ModelSpec.Build(SmallResNet);
        source.save_safetensors(path);
        Assert.AreEqual(WeightFileFormat.Safetensors, WeightLoader.DetectFormat(path));
        using var target = ModelSpec.Build(SmallResNet);
        WeightLoader.Load(target, path);
        AssertSameState(source, target);
    }

    [TestMethod]
    public void TorchSharpFormatLoadsBackEqualAndTruncationIsDetected()
    {
        string path = Path.Combine(_tempDir, "weights.dat");
        using var source = ModelSpec.Build(SmallResNet);
        source.save(path);
        Assert.AreEqual(WeightFileFormat.TorchSharp, WeightLoader.DetectFormat(path));
        using var target = ModelSpec.Build(SmallResNet);
        WeightLoader.Load(target, path);
        AssertSameState(source, target);

        string truncated = Path.Combine(_tempDir, "truncated.dat");
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(truncated, bytes[..(bytes.Length - 100)]);
        using var fresh = ModelSpec.Build(SmallResNet);
        var before = Snapshot(fresh);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => WeightLoader.Load(fresh, truncated));
        StringAssert.Contains(e.Message, truncated);
        AssertUnchanged(before, fresh);
    }

    [TestMethod]
    public void LoadedWeightsReproduceTheReferenceForwardPass()
    {
        // Loading the same file into two fresh models gives bit-identical outputs.
        string path = ReferenceFile("resnet_bottleneck_ebp_layer3");
        const string spec = """{"kind":"resnet","block":"bottleneck","layers":[2,1,1,1],"width":8,"num_classes":10,"in_channels":3}""";
        using var a = ModelSpec.Build(spec);
        using var b = ModelSpec.Build(spec);
        WeightLoader.Load(a, path, "model.");
        WeightLoader.Load(b, path, "model.");
        using var t = WeightLoader.ReadSafetensors(path);
        using var ya = a.call(t["input"]);
        using var yb = b.call(t["input"]);
        Assert.IsTrue(BitEqual(ya, yb));
    }
}
