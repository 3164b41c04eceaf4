namespace Ebp.Datasets.Tests;

[TestClass]
public sealed class MnistSourceTests
{
    [TestMethod]
    public void MissingCache_TellsToRunTheFetchScript()
    {
        string dir = TestSets.NewTempDir();
        try
        {
            Assert.IsFalse(MnistSource.IsAvailable(dir));
            var e = Assert.ThrowsExactly<FileNotFoundException>(() => MnistSource.LoadTrain(dir));
            StringAssert.Contains(e.Message, "scripts/fetch-mnist.sh");
            StringAssert.Contains(e.Message, "train-images-idx3-ubyte");
            StringAssert.Contains(e.Message, dir);
            StringAssert.Contains(e.Message, "EBP_DATA_DIR");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void LoadsSplitsByTheirOfficialNames_PlainOrGzipped()
    {
        string dir = TestSets.NewTempDir();
        try
        {
            File.Copy(TestSets.TrainImages, Path.Combine(dir, "train-images-idx3-ubyte.gz"));
            File.Copy(TestSets.TrainLabels, Path.Combine(dir, "train-labels-idx1-ubyte"));
            Assert.IsFalse(MnistSource.IsAvailable(dir), "the test split is still missing");
            File.Copy(TestSets.TestImages, Path.Combine(dir, "t10k-images-idx3-ubyte.gz"));
            File.Copy(TestSets.TestLabels, Path.Combine(dir, "t10k-labels-idx1-ubyte"));
            Assert.IsTrue(MnistSource.IsAvailable(dir));

            MnistSet train = MnistSource.LoadTrain(dir);
            MnistSet test = MnistSource.LoadTest(dir);
            Assert.AreEqual(MnistSplit.Train, train.Split);
            Assert.AreEqual(MnistSplit.Test, test.Split);
            CollectionAssert.AreEqual(TestSets.FirstTrainLabels, train.Labels.Take(10).ToArray());
            CollectionAssert.AreEqual(TestSets.FirstTestLabels, test.Labels.Take(10).ToArray());

            // The subset is not the full data: every checksum must fail (they are of the uncompressed originals).
            Assert.HasCount(4, MnistSource.VerifyChecksums(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    [DoNotParallelize]
    public void DataRoot_FollowsEbpDataDir_LikeTheScript()
    {
        string? saved = Environment.GetEnvironmentVariable(MnistSource.DataDirEnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(MnistSource.DataDirEnvironmentVariable, "/some/where");
            Assert.AreEqual("/some/where", MnistSource.DataRoot);
            Assert.AreEqual(Path.Combine("/some/where", "mnist"), MnistSource.DefaultDirectory);

            Environment.SetEnvironmentVariable(MnistSource.DataDirEnvironmentVariable, null);
            string home = Environment.GetEnvironmentVariable("HOME") ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            Assert.AreEqual(Path.Combine(home, ".cache", "ebp", "mnist"), MnistSource.DefaultDirectory);
        }
        finally
        {
            Environment.SetEnvironmentVariable(MnistSource.DataDirEnvironmentVariable, saved);
        }
    }

    [TestMethod]
    public void FileNames_AreTheOfficialOnes()
    {
        Assert.AreEqual("train-images-idx3-ubyte", MnistSource.ImagesFileName(MnistSplit.Train));
        Assert.AreEqual("train-labels-idx1-ubyte", MnistSource.LabelsFileName(MnistSplit.Train));
        Assert.AreEqual("t10k-images-idx3-ubyte", MnistSource.ImagesFileName(MnistSplit.Test));
        Assert.AreEqual("t10k-labels-idx1-ubyte", MnistSource.LabelsFileName(MnistSplit.Test));
        CollectionAssert.AreEquivalent(
            new[] { "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" },
            MnistSource.ExpectedSha256.Keys.ToArray());
    }

    /// <summary>Runs only where scripts/fetch-mnist.sh has filled the cache; otherwise reported as inconclusive.</summary>
    [TestMethod]
    [TestCategory("RealData")]
    public void FullMnist_WhenCached_IsTheOfficialData()
    {
        if (!MnistSource.IsAvailable())
        {
            Assert.Inconclusive($"MNIST is not cached in {MnistSource.DefaultDirectory}; run scripts/fetch-mnist.sh to enable this test.");
        }

        Assert.HasCount(0, MnistSource.VerifyChecksums());
        MnistSet train = MnistSource.LoadTrain();
        MnistSet test = MnistSource.LoadTest();
        Assert.AreEqual(60000, train.Count);
        Assert.AreEqual(10000, test.Count);
        CollectionAssert.AreEqual(TestSets.FirstTrainLabels, train.Labels.Take(10).ToArray());
        CollectionAssert.AreEqual(TestSets.FirstTestLabels, test.Labels.Take(10).ToArray());
        CollectionAssert.AreEqual(TestSets.Train.Pixels, train.Take(200).Pixels, "the committed subset is the head of the real data");
        CollectionAssert.AreEqual(TestSets.Test.Pixels, test.Take(200).Pixels);
    }
}
