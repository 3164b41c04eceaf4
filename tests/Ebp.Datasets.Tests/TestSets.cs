using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Ebp.Datasets.Tests;

/// <summary>The committed MNIST subset (first 200 train and first 200 t10k digits), loaded once.</summary>
internal static class TestSets
{
    public static string SubsetDir => Path.Combine(AppContext.BaseDirectory, "TestData", "mnist-subset");

    public static string TrainImages => Path.Combine(SubsetDir, "train-images-idx3-ubyte.gz");
    public static string TrainLabels => Path.Combine(SubsetDir, "train-labels-idx1-ubyte");
    public static string TestImages => Path.Combine(SubsetDir, "t10k-images-idx3-ubyte.gz");
    public static string TestLabels => Path.Combine(SubsetDir, "t10k-labels-idx1-ubyte");

    private static readonly Lazy<MnistSet> LazyTrain = new(() => IdxReader.ReadSet(TrainImages, TrainLabels, MnistSplit.Train));
    private static readonly Lazy<MnistSet> LazyTest = new(() => IdxReader.ReadSet(TestImages, TestLabels, MnistSplit.Test));

    public static MnistSet Train => LazyTrain.Value;
    public static MnistSet Test => LazyTest.Value;

    /// <summary>The first ten labels of the official files.</summary>
    public static readonly byte[] FirstTrainLabels = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4];
    public static readonly byte[] FirstTestLabels = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9];

    /// <summary>SHA-256 of the scenes' pixels as little-endian float32, scene after scene (lowercase hex).</summary>
    public static string PixelHash(IEnumerable<ClutteredScene> scenes)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[4];
        foreach (ClutteredScene s in scenes)
        {
            foreach (float v in s.Pixels)
            {
                BinaryPrimitives.WriteSingleLittleEndian(buffer, v);
                sha.AppendData(buffer);
            }
        }

        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>A fresh empty temporary directory, deleted by the caller.</summary>
    public static string NewTempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "ebp-datasets-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
