namespace Ebp.Datasets.Tests;

[TestClass]
public sealed class RandomTests
{
    [TestMethod]
    public void SplitMix64_MatchesTheReferenceOutput()
    {
        ulong state = 0;
        Assert.AreEqual(0xE220A8397B1DCDAFUL, SplitMix64.Next(ref state)); // reference splitmix64.c, seed 0
        Assert.AreEqual(SplitMix64.Gamma, state);
    }

    [TestMethod]
    public void Xoshiro256StarStar_MatchesTheReferenceOutput()
    {
        // Reference xoshiro256starstar.c from the state {1, 2, 3, 4}.
        var r = new Xoshiro256StarStar(1, 2, 3, 4);
        Assert.AreEqual(11520UL, r.NextUInt64());
        Assert.AreEqual(0UL, r.NextUInt64());
        Assert.AreEqual(1509978240UL, r.NextUInt64());
        Assert.AreEqual(1215971899390074240UL, r.NextUInt64());
    }

    [TestMethod]
    public void SameSeed_SameSequence_DeriveSeparatesIndices()
    {
        var a = new Xoshiro256StarStar(123);
        var b = new Xoshiro256StarStar(123);
        for (int i = 0; i < 100; i++) Assert.AreEqual(a.NextUInt64(), b.NextUInt64());
        Assert.AreNotEqual(new Xoshiro256StarStar(123).NextUInt64(), new Xoshiro256StarStar(124).NextUInt64());

        var seeds = new HashSet<ulong>();
        for (ulong seed = 0; seed < 20; seed++)
            for (ulong i = 0; i < 50; i++) seeds.Add(SplitMix64.Derive(seed, i));
        Assert.HasCount(1000, seeds);
    }

    [TestMethod]
    public void NextInt_StaysInRange_AndCoversItUniformly()
    {
        var r = new Xoshiro256StarStar(7);
        var counts = new int[6];
        for (int i = 0; i < 60000; i++) counts[r.NextInt(6)]++;
        foreach (int c in counts) Assert.IsTrue(c is > 9500 and < 10500, $"count {c} of 10000 expected");

        var seen = new HashSet<int>();
        for (int i = 0; i < 1000; i++)
        {
            int v = r.NextInt(-2, 2);
            Assert.IsTrue(v is >= -2 and <= 2);
            seen.Add(v);
        }

        Assert.HasCount(5, seen, "both ends are included");
        Assert.AreEqual(int.MaxValue, new Xoshiro256StarStar(1).NextInt(int.MaxValue, int.MaxValue));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => r.NextInt(0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => r.NextInt(3, 2));
        Assert.ThrowsExactly<ArgumentException>(() => new Xoshiro256StarStar(0, 0, 0, 0));
    }
}
