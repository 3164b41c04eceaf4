using Ebp.Threading;
using TorchSharp;

namespace Ebp.Audit.Tests;

/// <summary>Without <c>--threads</c> the thread count is measured on the first batches (issue 15, item 4).</summary>
[TestClass]
public sealed class ThreadTunerTests
{
    [TestMethod]
    public void Choose_TakesTheFastest_AndFewerThreadsWithinTheMargin()
    {
        // A small model on a shared host: one thread faster.
        Assert.AreEqual(1, ThreadTuner.Choose(new Dictionary<int, double> { [1] = 0.070, [2] = 0.097 }));
        // A large model on a quiet host: two threads clearly faster.
        Assert.AreEqual(2, ThreadTuner.Choose(new Dictionary<int, double> { [1] = 0.80, [2] = 0.50 }));
        // 5 % faster on two threads is within the 10 % margin: one thread (it leaves a core to the host).
        Assert.AreEqual(1, ThreadTuner.Choose(new Dictionary<int, double> { [1] = 1.00, [2] = 0.95 }));
        // Just beyond the margin: 1.00 > 0.90 × 1.10 = 0.99.
        Assert.AreEqual(2, ThreadTuner.Choose(new Dictionary<int, double> { [1] = 1.00, [2] = 0.90 }));
        // Many cores: the midpoint within 10 % of the fastest (all 16) wins; without margin the fastest.
        var many = new Dictionary<int, double> { [1] = 1.00, [8] = 0.21, [16] = 0.20 };
        Assert.AreEqual(8, ThreadTuner.Choose(many));
        Assert.AreEqual(16, ThreadTuner.Choose(many, tieMargin: 0));
        // Non-finite timings are ignored; none at all is an error.
        Assert.AreEqual(2, ThreadTuner.Choose(new Dictionary<int, double> { [1] = double.NaN, [2] = 0.5 }));
        Assert.ThrowsExactly<ArgumentException>(() => ThreadTuner.Choose(new Dictionary<int, double> { [1] = double.PositiveInfinity }));
    }

    [TestMethod]
    public void Candidates_AreOneTheMidpointAndAll()
    {
        CollectionAssert.AreEqual(new[] { 1 }, ThreadTuner.CandidatesFor(1).ToArray());
        CollectionAssert.AreEqual(new[] { 1, 2 }, ThreadTuner.CandidatesFor(2).ToArray());
        CollectionAssert.AreEqual(new[] { 1, 3 }, ThreadTuner.CandidatesFor(3).ToArray());
        CollectionAssert.AreEqual(new[] { 1, 8, 16 }, ThreadTuner.CandidatesFor(16).ToArray());
    }

    [TestMethod]
    public void Tuner_WarmsUp_AlternatesTheCandidates_ThenKeepsTheFastest()
    {
        // 2 CPUs, batches of 8: warm-up + 2 rounds × 2 candidates = 5 batches; 80 images are enough (half the run).
        var tuner = new ThreadTuner(2, pendingImages: 80, batchSize: 8);
        Assert.IsTrue(tuner.Trying);
        var order = new List<int>();
        var perImage = new Dictionary<int, double> { [1] = 0.07, [2] = 0.10 };
        for (int b = 0; b < 10; b++)
        {
            int n = tuner.Next();
            order.Add(n);
            // The warm-up batch is slow (JIT): it must not count.
            double seconds = b == 0 ? 100 : perImage[n] * 8;
            tuner.Record(n, 8, seconds);
        }
        CollectionAssert.AreEqual(new[] { 2, 1, 2, 1, 2, 1, 1, 1, 1, 1 }, order);
        Assert.IsTrue(tuner.Decided);
        Assert.AreEqual(1, tuner.Chosen);
        var trials = tuner.Trials;
        Assert.HasCount(2, trials);
        Assert.AreEqual((1, 2, 16), (trials[0].Threads, trials[0].Batches, trials[0].Images));
        Assert.AreEqual(0.07, trials[0].SecondsPerImage, 1e-12);
        Assert.AreEqual(0.10, trials[1].SecondsPerImage, 1e-12);

        // Too few images for a trial, or one CPU: the available count, untimed.
        var few = new ThreadTuner(2, pendingImages: 79, batchSize: 8);
        Assert.IsFalse(few.Trying);
        Assert.AreEqual(2, few.Next());
        Assert.IsFalse(new ThreadTuner(1, pendingImages: 1000, batchSize: 8).Trying);
    }

    [TestMethod]
    public void AnAutomaticRun_GivesTheSameReportAsOneThread_AndRecordsTheTrial()
    {
        // Batches of one image: the 12 scenes are enough for the trial (5 batches at most half the run).
        var output = TestSet.NewFolder("auto-threads");
        try
        {
            var result = new AuditJob(TestSet.Options(output, batchSize: 1) with { Threads = null }).Run();
            Assert.AreEqual(AuditStatus.Complete, result.Status);
            Outputs.AssertSameReport(TestSet.Reference, output);

            var t = Outputs.Summary(output)["run"]!["timings"]!;
            int available = TorchThreads.AvailableCpus();
            if (Environment.GetEnvironmentVariable("OMP_NUM_THREADS") is { Length: > 0 })
                Assert.AreEqual("environment", Outputs.Str(t["threads_chosen_by"]));
            else if (available == 1)
                Assert.AreEqual("default", Outputs.Str(t["threads_chosen_by"]));
            else
            {
                Assert.AreEqual("measured", Outputs.Str(t["threads_chosen_by"]));
                var trial = t["thread_trial"]!.AsArray();
                CollectionAssert.AreEqual(ThreadTuner.CandidatesFor(available).ToArray(), trial.Select(x => Outputs.Int(x!["threads"])!.Value).ToArray());
                foreach (var x in trial)
                {
                    Assert.AreEqual(ThreadTuner.Rounds, Outputs.Int(x!["batches"]));
                    Assert.AreEqual(ThreadTuner.Rounds, Outputs.Int(x["images"]));
                    Assert.IsGreaterThan(0.0, Outputs.Double(x["ms_per_image"])!.Value);
                }
                Assert.Contains(Outputs.Int(t["threads"])!.Value, ThreadTuner.CandidatesFor(available).ToArray());
                StringAssert.Contains(File.ReadAllText(Path.Combine(output, "summary.md")), "measured");
            }
        }
        finally
        {
            torch.set_num_threads(1); // the other tests' setting (see TestSet.Options)
        }
    }

    [TestMethod]
    public void AnExplicitThreadCount_IsRecordedAsTheOption()
    {
        var t = Outputs.Summary(TestSet.Reference)["run"]!["timings"]!;
        Assert.AreEqual("option", Outputs.Str(t["threads_chosen_by"]));
        Assert.IsNull(t["thread_trial"]);
    }
}
