namespace Ebp.Datasets.Tests;

[TestClass]
public sealed class IdxReaderTests
{
    [TestMethod]
    public void TrainSubset_HasTheOfficialFirstDigits()
    {
        MnistSet train = TestSets.Train;
        Assert.AreEqual(MnistSplit.Train, train.Split);
        Assert.AreEqual(200, train.Count);
        Assert.AreEqual(28, train.Rows);
        Assert.AreEqual(28, train.Cols);
        Assert.AreEqual(200 * 784, train.Pixels.Length);
        CollectionAssert.AreEqual(TestSets.FirstTrainLabels, train.Labels.Take(10).ToArray());

        MnistDigit first = train[0];
        Assert.AreEqual(5, first.Label);
        Assert.AreEqual(784, first.Pixels.Length);
        // Known property of MNIST train image 0 (the "5"): its pixels sum to 27525.
        Assert.AreEqual(27525, first.Pixels.ToArray().Sum(b => (int)b));
        Assert.AreEqual(0, first[0, 0]);
    }

    [TestMethod]
    public void TestSubset_HasTheOfficialFirstDigits()
    {
        MnistSet test = TestSets.Test;
        Assert.AreEqual(MnistSplit.Test, test.Split);
        Assert.AreEqual(200, test.Count);
        Assert.AreEqual(28, test.Rows);
        Assert.AreEqual(28, test.Cols);
        CollectionAssert.AreEqual(TestSets.FirstTestLabels, test.Labels.Take(10).ToArray());
        Assert.AreEqual(10, test.ClassCounts().Count(c => c > 0), "the first 200 test digits cover all classes");
        Assert.AreEqual(200, test.ClassCounts().Sum());
    }

    [TestMethod]
    public void Indexer_OutOfRange_Throws()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _ = TestSets.Train[200]);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => _ = TestSets.Train[-1]);
    }

    [TestMethod]
    public void PlainAndGzipAndUnseekable_ReadTheSame()
    {
        MnistSet source = TestSets.Test.Take(50);
        string dir = TestSets.NewTempDir();
        try
        {
            string plainImages = Path.Combine(dir, "i"), plainLabels = Path.Combine(dir, "l");
            string gzImages = Path.Combine(dir, "i.gz"), gzLabels = Path.Combine(dir, "l.gz");
            IdxWriter.WriteSet(source, plainImages, plainLabels);
            IdxWriter.WriteSet(source, gzImages, gzLabels, gzip: true);
            Assert.AreEqual(16 + 50 * 784, new FileInfo(plainImages).Length);
            Assert.AreEqual(8 + 50, new FileInfo(plainLabels).Length);

            MnistSet plain = IdxReader.ReadSet(plainImages, plainLabels, MnistSplit.Test);
            MnistSet gz = IdxReader.ReadSet(gzImages, gzLabels, MnistSplit.Test);
            CollectionAssert.AreEqual(source.Pixels, plain.Pixels);
            CollectionAssert.AreEqual(source.Labels, plain.Labels);
            CollectionAssert.AreEqual(source.Pixels, gz.Pixels);
            CollectionAssert.AreEqual(source.Labels, gz.Labels);

            foreach (string path in new[] { plainImages, gzImages })
            {
                using var unseekable = new UnseekableStream(File.ReadAllBytes(path));
                IdxImages images = IdxReader.ReadImages(unseekable, path);
                CollectionAssert.AreEqual(source.Pixels, images.Pixels);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void WrongMagic_IsInvalidData()
    {
        var e = Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadImages(TestSets.TrainLabels));
        StringAssert.Contains(e.Message, "0x00000801");
        StringAssert.Contains(e.Message, "labels file");
        StringAssert.Contains(e.Message, TestSets.TrainLabels);

        Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadLabels(TestSets.TrainImages));
        Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadImages(new MemoryStream([0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0])));
    }

    [TestMethod]
    public void TruncatedOrPaddedImages_AreInvalidData()
    {
        byte[] good = ImagesBytes(3, 4, 5);
        Assert.AreEqual(3, IdxReader.ReadImages(new MemoryStream(good)).Count);

        var truncated = Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadImages(new MemoryStream(good[..^1]), "cut.idx"));
        StringAssert.Contains(truncated.Message, "cut.idx");
        Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadImages(new UnseekableStream(good[..^1])));
        Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadImages(new MemoryStream(good[..10])));
        Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadImages(new MemoryStream([.. good, 7])));
        Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadImages(new UnseekableStream([.. good, 7])));
        Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadImages(new MemoryStream([])));
    }

    [TestMethod]
    public void BadDimensions_AreInvalidData()
    {
        byte[] zeroRows = ImagesBytes(2, 4, 4);
        zeroRows[11] = 0; // rows = 0
        Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadImages(new MemoryStream(zeroRows)));

        byte[] negativeCount = ImagesBytes(2, 4, 4);
        negativeCount[4] = 0x80;
        Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadImages(new MemoryStream(negativeCount)));

        byte[] huge = ImagesBytes(1, 4, 4);
        huge[12] = 0x7f; // cols ~ 2^31
        Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadImages(new MemoryStream(huge)));
    }

    [TestMethod]
    public void CorruptGzip_IsInvalidData()
    {
        byte[] gz = File.ReadAllBytes(TestSets.TrainImages);
        byte[] truncated = gz[..(gz.Length / 2)];
        var e = Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadImages(new MemoryStream(truncated), "half.gz"));
        StringAssert.Contains(e.Message, "half.gz");

        byte[] flipped = (byte[])gz.Clone();
        for (int i = 100; i < 140; i++) flipped[i] ^= 0x5A;
        Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadImages(new MemoryStream(flipped), "flipped.gz"));
    }

    [TestMethod]
    public void LabelProblems_AreInvalidData()
    {
        string dir = TestSets.NewTempDir();
        try
        {
            string images = Path.Combine(dir, "images"), labels = Path.Combine(dir, "labels");
            File.WriteAllBytes(images, ImagesBytes(3, 2, 2));
            IdxWriter.WriteLabels(labels, [1, 2]);
            var mismatch = Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadSet(images, labels, MnistSplit.Train));
            StringAssert.Contains(mismatch.Message, "3 images");

            IdxWriter.WriteLabels(labels, [1, 10, 2]);
            var bad = Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadSet(images, labels, MnistSplit.Train));
            StringAssert.Contains(bad.Message, "label 10 at index 1");

            IdxWriter.WriteLabels(labels, [1, 9, 2], gzip: true);
            Assert.AreEqual(3, IdxReader.ReadSet(images, labels, MnistSplit.Train).Count);

            File.WriteAllBytes(labels, [0, 0, 8, 1, 0, 0, 0, 5, 1, 2]);
            Assert.ThrowsExactly<InvalidDataException>(() => IdxReader.ReadLabels(labels));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void MissingFile_IsFileNotFound()
    {
        Assert.ThrowsExactly<FileNotFoundException>(() => IdxReader.ReadImages("/nonexistent/ebp/images"));
    }

    private static byte[] ImagesBytes(int count, int rows, int cols)
    {
        var pixels = new byte[count * rows * cols];
        for (int i = 0; i < pixels.Length; i++) pixels[i] = (byte)(i * 7);
        using var stream = new MemoryStream();
        IdxWriter.WriteImages(stream, count, rows, cols, pixels);
        return stream.ToArray();
    }

    /// <summary>A read-only stream that cannot seek, as a network or pipe stream.</summary>
    private sealed class UnseekableStream(byte[] data) : Stream
    {
        private readonly MemoryStream _inner = new(data);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, Math.Min(count, 1000));
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
