using Ebp.Models;
using Ebp.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Core.Tests.Weights;

/// <summary>
/// Issue 14, items 1-3: every file of the generated corpus (<see cref="HostileWeightFiles"/>) is rejected with an
/// <see cref="InvalidDataException"/> naming the file and the problem, leaves the model as it was, and, in a child
/// process, costs no more peak memory than the model's own size plus a small constant.
/// </summary>
[TestClass]
public sealed class HostileWeightFileTests
{
    /// <summary>Allowed growth of the peak resident memory over the model's size while a file is rejected.</summary>
    private const long SlackKiB = 64 * 1024;

    private static string _folder = "";
    private static IReadOnlyList<HostileWeightFiles.Case> _cases = [];
    private static long _modelKiB;

    [ClassInitialize]
    public static void Init(TestContext _)
    {
        _folder = Path.Combine(Path.GetTempPath(), "ebp-hostile-" + Guid.NewGuid().ToString("N"));
        using var model = ModelSpec.Build(HostileWeightFiles.ModelSpecJson);
        _cases = HostileWeightFiles.Write(_folder, model);
        _modelKiB = model.state_dict().Values.Sum(t => t.numel() * t.ElementSize) / 1024;
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }

    private static Dictionary<string, byte[]> Snapshot(nn.Module model) =>
        model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.bytes.ToArray());

    [TestMethod]
    public void EveryCorpusFileIsInvalidDataNamingTheFileAndTheProblem()
    {
        Assert.IsGreaterThanOrEqualTo(10, _cases.Count);
        using var model = ModelSpec.Build(HostileWeightFiles.ModelSpecJson);
        var before = Snapshot(model);
        var failures = new List<string>();
        foreach (var c in _cases)
        {
            string path = Path.Combine(_folder, c.Name);
            try
            {
                WeightLoader.Load(model, path);
                failures.Add($"{c.Name}: loaded");
            }
            catch (Exception e)
            {
                if (e is not InvalidDataException)
                    failures.Add($"{c.Name}: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
                else if (!e.Message.Contains(path, StringComparison.Ordinal) || !e.Message.Contains(c.Expected, StringComparison.Ordinal))
                    failures.Add($"{c.Name}: message lacks the path or \"{c.Expected}\": {e.Message.Split('\n')[0]}");
            }
        }
        Assert.AreEqual(0, failures.Count, string.Join("\n", failures));
        var after = Snapshot(model);
        foreach (var (k, v) in before)
            CollectionAssert.AreEqual(v, after[k], $"{k} changed");
        Assert.IsFalse(File.Exists(Path.Combine(_folder, "pwned")), "the os.system pickle ran");
    }

    [TestMethod]
    public void RejectingAnyCorpusFileCostsAtMostTheModelSizePlusASmallConstant()
    {
        string spec = Path.Combine(_folder, "model.json");
        File.WriteAllText(spec, HostileWeightFiles.ModelSpecJson);
        var lines = ChildProcess.RunOk(new[] { "load-weights", spec }.Concat(_cases.Select(c => Path.Combine(_folder, c.Name))));
        Assert.HasCount(_cases.Count, lines);
        var failures = new List<string>();
        foreach (var line in lines)
        {
            Console.WriteLine(line);
            var f = line.Split('\t');
            long before = long.Parse(f[2]), peak = long.Parse(f[3]);
            if (f[1] != typeof(InvalidDataException).FullName)
                failures.Add($"{f[0]}: {f[1]} {f[4]}");
            if (peak - before > _modelKiB + SlackKiB)
                failures.Add($"{f[0]}: peak {peak / 1024} MiB from {before / 1024} MiB (+{(peak - before) / 1024} MiB; bound: model {_modelKiB} KiB + {SlackKiB / 1024} MiB)");
        }
        Assert.AreEqual(0, failures.Count, string.Join("\n", failures));
    }

    [TestMethod]
    public void TorchSaveLayoutWithRealDataLoadsBackEqual()
    {
        // The same writer as the corpus, with the model's bytes: the reader accepts torch.save's own layout,
        // with and without deflated entries.
        using var source = TestModels.Reinitialise(ModelSpec.Build(HostileWeightFiles.ModelSpecJson), seed: 14);
        var tensors = new List<HostileWeightFiles.PthTensor>();
        var sizes = new Dictionary<string, long>();
        var data = new Dictionary<string, byte[]>();
        foreach (var (key, t) in source.state_dict())
        {
            string k = tensors.Count.ToString();
            tensors.Add(new(key, k, t.dtype == ScalarType.Int64 ? "LongStorage" : "FloatStorage", t.numel(), 0, t.shape));
            data[k] = t.contiguous().bytes.ToArray();
            sizes[k] = data[k].Length;
        }
        foreach (bool deflate in new[] { false, true })
        {
            string path = Path.Combine(_folder, $"good-{deflate}.pth");
            HostileWeightFiles.WritePth(path, tensors, sizes, deflate, data);
            using var target = ModelSpec.Build(HostileWeightFiles.ModelSpecJson);
            var result = WeightLoader.Load(target, path);
            Assert.HasCount(source.state_dict().Count, result.LoadedKeys);
            foreach (var (key, t) in source.state_dict())
                CollectionAssert.AreEqual(t.bytes.ToArray(), target.state_dict()[key].bytes.ToArray(), $"{key} (deflate: {deflate})");
            using var read = WeightLoader.ReadStateDict(path);
            Assert.HasCount(tensors.Count, read);
        }
    }

    [TestMethod]
    public void TensorsSharingAStorageAreCopiedApart()
    {
        // torch.save keeps views of one storage as views; both must load with their own values.
        string path = Path.Combine(_folder, "views.pth");
        var values = Enumerable.Range(0, 16).Select(i => (float)i).ToArray();
        var bytes = values.SelectMany(BitConverter.GetBytes).ToArray();
        HostileWeightFiles.WritePth(path,
            [new("features.1.running_mean", "0", "FloatStorage", 16, 0, [8]), new("features.1.running_var", "0", "FloatStorage", 16, 8, [8])],
            new Dictionary<string, long> { ["0"] = bytes.Length }, data: new Dictionary<string, byte[]> { ["0"] = bytes });
        using var read = WeightLoader.ReadStateDict(path);
        CollectionAssert.AreEqual(values[..8], read["features.1.running_mean"].data<float>().ToArray());
        CollectionAssert.AreEqual(values[8..], read["features.1.running_var"].data<float>().ToArray());
    }
}
