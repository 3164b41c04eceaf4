using Ebp.Datasets;
using Ebp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Evaluation;

/// <summary>Where the t10k digits come from and how scenes become tensors.</summary>
public static class SceneData
{
    /// <summary>Seed of the evaluation scenes (t10k) used by the benchmark, the training report and the demo.</summary>
    public const ulong TestSceneSeed = 20_160_905;

    /// <summary>
    /// The MNIST t10k split: the full 10,000 digits from the cache that <c>scripts/fetch-mnist.sh</c> fills if it
    /// is there, else the 200-digit subset in <paramref name="subsetDir"/> (files <c>t10k-images-idx3-ubyte.gz</c>,
    /// <c>t10k-labels-idx1-ubyte</c>).
    /// </summary>
    public static (MnistSet Set, string Description) LoadTest(string? mnistDir, string? subsetDir)
    {
        string dir = mnistDir ?? MnistSource.DefaultDirectory;
        if (MnistSource.IsAvailable(dir))
        {
            var set = MnistSource.LoadTest(dir);
            return (set, $"full MNIST t10k ({set.Count} digits) from {dir}");
        }
        if (mnistDir is not null)
            throw new FileNotFoundException($"No MNIST files in '{mnistDir}'. Run {MnistSource.FetchScript} or omit --mnist.");
        if (subsetDir is null || !File.Exists(Path.Combine(subsetDir, "t10k-labels-idx1-ubyte")))
            throw new FileNotFoundException(
                $"MNIST is not in the cache ({dir}) and no committed subset was found. Run {MnistSource.FetchScript}.");
        var subset = IdxReader.ReadSet(
            Path.Combine(subsetDir, "t10k-images-idx3-ubyte.gz"), Path.Combine(subsetDir, "t10k-labels-idx1-ubyte"), MnistSplit.Test);
        return (subset, $"committed subset: first {subset.Count} MNIST t10k digits ({subsetDir}); run {MnistSource.FetchScript} for the full set");
    }

    /// <summary>The scenes as a <c>[B, 1, H, W]</c> float tensor with values in [0, 1].</summary>
    /// <param name="scenes">The scenes.</param>
    /// <param name="normalization">The model card's normalisation, applied after pixel/255 (null: none).</param>
    public static Tensor ToTensor(IReadOnlyList<ClutteredScene> scenes, InputNormalization? normalization = null)
    {
        if (normalization is not null)
        {
            using var raw = ToTensor(scenes);
            return normalization.Apply(raw);
        }
        if (scenes.Count == 0) throw new ArgumentException("No scenes.", nameof(scenes));
        int h = scenes[0].Height, w = scenes[0].Width, plane = h * w;
        var data = new float[scenes.Count * plane];
        for (int i = 0; i < scenes.Count; i++) scenes[i].Pixels.CopyTo(data, i * plane);
        return torch.tensor(data, new long[] { scenes.Count, 1, h, w });
    }

    /// <summary>The multi-hot labels as a <c>[B, 10]</c> float tensor.</summary>
    public static Tensor Labels(IReadOnlyList<ClutteredScene> scenes)
    {
        var data = new float[scenes.Count * MnistSet.ClassCount];
        for (int i = 0; i < scenes.Count; i++) scenes[i].MultiHot.CopyTo(data, i * MnistSet.ClassCount);
        return torch.tensor(data, new long[] { scenes.Count, MnistSet.ClassCount });
    }

    /// <summary>Sigmoid scores <c>[scene][class]</c> of the model on the scenes (eval mode, no grad).</summary>
    public static List<float[]> Scores(nn.Module<Tensor, Tensor> model, IReadOnlyList<ClutteredScene> scenes, int batch = 100,
        InputNormalization? normalization = null)
    {
        var result = new List<float[]>(scenes.Count);
        using var _ = torch.no_grad();
        for (int start = 0; start < scenes.Count; start += batch)
        {
            using var scope = torch.NewDisposeScope();
            var chunk = scenes.Skip(start).Take(batch).ToList();
            var probs = torch.sigmoid(model.call(ToTensor(chunk, normalization))).cpu();
            int classes = (int)probs.shape[1];
            var flat = probs.data<float>().ToArray();
            for (int i = 0; i < chunk.Count; i++) result.Add(flat.AsSpan(i * classes, classes).ToArray());
        }
        return result;
    }

    /// <summary>A one-line description of this machine for reports.</summary>
    public static string Machine()
    {
        string cpu = "unknown CPU";
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null) cpu = line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return $"{cpu}, {Environment.ProcessorCount} logical CPUs, torch threads {torch.get_num_threads()}, " +
               $"{System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}, TorchSharp-cpu 0.107.0";
    }
}
