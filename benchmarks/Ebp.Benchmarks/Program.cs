using System.CommandLine;
using Ebp;
using Ebp.Benchmarks;
using Ebp.Models;
using TorchSharp;
using static TorchSharp.torch;

// dotnet run -c Release --project benchmarks/Ebp.Benchmarks -- [--runs N] [--warmup N] [--threads N] [--quick] [--only baseline|linear|classes|memory|soak|mlnet] [--model vgg16|resnet50]
// Idle OpenMP threads must sleep, not spin, on a shared host: set before libtorch loads.
Ebp.Threading.TorchThreads.PreferPassiveWaiting();
var runsOption = new Option<int>("--runs") { Description = "Timed runs per figure (medians).", DefaultValueFactory = _ => 5 };
var warmupOption = new Option<int>("--warmup") { Description = "Untimed warm-up runs.", DefaultValueFactory = _ => 1 };
var threadsOption = new Option<int>("--threads") { Description = "Torch intra-op threads.", DefaultValueFactory = _ => 2 };
var quickOption = new Option<bool>("--quick") { Description = "Fewer configurations." };
var onlyOption = new Option<string?>("--only") { Description = "One section." };
onlyOption.AcceptOnlyFromAmong("baseline", "linear", "classes", "memory", "soak", "mlnet");
var modelOption = new Option<string?>("--model") { Description = "Only this model (to re-measure one on a quiet machine)." };
modelOption.AcceptOnlyFromAmong("vgg16", "resnet50");
var root = new RootCommand("Ebp benchmarks: EBP and c-EBP against their FLOP bound and baselines measured in the same run.")
{
    runsOption, warmupOption, threadsOption, quickOption, onlyOption, modelOption,
};
var parsed = root.Parse(args);
// Without an action of our own, the parse result has one only for --help or a parse error: print and stop.
if (parsed.Action is not null) return parsed.Invoke();
int runs = parsed.GetValue(runsOption), warmup = parsed.GetValue(warmupOption), threads = parsed.GetValue(threadsOption);
bool quick = parsed.GetValue(quickOption);
string? only = parsed.GetValue(onlyOption);
Sections.ModelFilter = parsed.GetValue(modelOption);
torch.set_num_threads(threads);
torch.manual_seed(0);
Console.WriteLine($"# Ebp benchmark — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
Console.WriteLine($"machine: {Environment.ProcessorCount} logical CPUs, {Environment.OSVersion}, .NET {Environment.Version}, torch threads {threads}; runs {runs} (medians), warm-up {warmup}; random weights, 224×224 inputs");

if (only is null or "baseline") Sections.Baseline(quick, runs, warmup);
if (only is null or "linear") Sections.LinearHead(runs, warmup);
if (only is null or "classes") Sections.ManyClasses(runs, warmup);
if (only is null or "memory") Sections.Memory(quick);
if (only is null or "soak") Sections.Soak(quick);
if (only is null or "mlnet") MlNetSection.Run(runs, warmup);
return 0;

internal static class Sections
{
    private static readonly (string Model, string Saliency, string Contrast)[] AllModels =
        { ("vgg16", "features.16", "classifier.4"), ("resnet50", "layer2", "avgpool") };

    /// <summary>--model NAME: only that model (to re-measure one on a quiet machine).</summary>
    public static string? ModelFilter { get; set; }

    private static IEnumerable<(string Model, string Saliency, string Contrast)> Models
        => AllModels.Where(m => ModelFilter is null || m.Model == ModelFilter);

    /// <summary>A second instance with the same weights, for a session that runs beside one-off calls.</summary>
    private static T Twin<T>(T model, Func<T> create) where T : nn.Module
    {
        var twin = create();
        using (torch.no_grad())
            foreach (var ((_, p), (_, q)) in twin.named_parameters().Zip(model.named_parameters())) p.copy_(q);
        return twin;
    }

    private static SaliencyOptions Options(SaliencyMethod m, string saliency, string contrast) => new()
    {
        Method = m, SaliencyLayer = saliency, ContrastLayer = m == SaliencyMethod.ContrastiveExcitationBackprop ? contrast : null,
    };

    /// <summary>
    /// Forward, gradient, EBP and c-EBP as one-off calls and in sessions, all interleaved. Every ratio is the
    /// median of the per-round ratios (see <see cref="Harness.Rounds.PairedRatio"/>). Sessions run on copies
    /// of the model (a session holds its model).
    /// </summary>
    public static void Baseline(bool quick, int runs, int warmup)
    {
        Console.WriteLine();
        Console.WriteLine("## Forward, gradient, EBP, contrastive EBP");
        Console.WriteLine();
        Console.WriteLine("| model | batch | FLOP bound (×fwd) | forward ms | gradient ms (×fwd) | EBP ms (×fwd) | EBP / bound | c-EBP ms (×fwd) | c-EBP / EBP | session EBP ms (×fwd) | session EBP / bound | session c-EBP ms | session c-EBP / EBP |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var (name, saliency, contrast) in Models)
        {
            using var model = ModelZoo.Create(name);
            using var copyA = Twin(model, () => ModelZoo.Create(name));
            using var copyB = Twin(model, () => ModelZoo.Create(name));
            double bound;
            using (var probe = torch.rand(1, 3, 224, 224))
            {
                var (total, above) = FlopCount.MacsAbove(model, probe, saliency);
                bound = 1 + 2 * above / total;
            }
            foreach (var batch in quick ? new[] { 1 } : new[] { 1, 8 })
            {
                using var x = torch.rand(batch, 3, 224, 224);
                var explainer = new SaliencyExplainer(model);
                var target = SaliencyTarget.Class(1);
                using var ebpSession = new SaliencyExplainer(copyA).OpenSession(Options(SaliencyMethod.ExcitationBackprop, saliency, contrast));
                using var cebpSession = new SaliencyExplainer(copyB).OpenSession(Options(SaliencyMethod.ContrastiveExcitationBackprop, saliency, contrast));
                void Forward() { using var s = torch.NewDisposeScope(); using var _ = torch.no_grad(); model.call(x); }
                void Run(SaliencyMethod m) { using var s = torch.NewDisposeScope(); explainer.Explain(x, target, Options(m, saliency, contrast)); }
                void InSession(SaliencySession session) { using var s = torch.NewDisposeScope(); session.Explain(x, target); }
                var rounds = Harness.Interleaved(new Action[]
                {
                    Forward,
                    () => Run(SaliencyMethod.Gradient),
                    () => Run(SaliencyMethod.ExcitationBackprop),
                    () => Run(SaliencyMethod.ContrastiveExcitationBackprop),
                    () => InSession(ebpSession),
                    () => InSession(cebpSession),
                }, warmup, runs);
                var m = Enumerable.Range(0, 6).Select(rounds.Median).ToArray();
                string Fwd(int k) => $"{m[k]:F0} ({rounds.PairedRatio(k, 0):F2}×)";
                Console.WriteLine($"| {name} @{saliency} / {contrast} | {batch} | {bound:F2} | {m[0]:F0} | {Fwd(1)} | {Fwd(2)} | {rounds.PairedRatio(2, 0) / bound:F2} | {Fwd(3)} | {rounds.PairedRatio(3, 2):F2} | {Fwd(4)} | {rounds.PairedRatio(4, 0) / bound:F2} | {m[5]:F0} | {rounds.PairedRatio(5, 4):F2} |");
            }
        }
    }

    /// <summary>
    /// Where W⁺ of large linear layers lives: VGG16's classifier head (fc6 103 M, fc7 17 M, fc8 4 M weights) on a
    /// [B, 25088] input, EBP at the input. A one-off call (fc6 and fc7 block by block), a session opened and
    /// closed for every call (W⁺ materialised per call: what one-off calls did before the blocked rule), and
    /// one session kept open (W⁺ materialised once).
    /// </summary>
    public static void LinearHead(int runs, int warmup)
    {
        Console.WriteLine();
        Console.WriteLine("## VGG16 classifier head: W⁺ block by block, materialised per call, kept");
        Console.WriteLine();
        Console.WriteLine("| batch | forward ms | one-off call (blocked) ms (×fwd) | session per call (W⁺ materialised) ms (×fwd) | kept session ms (×fwd) | blocked ÷ materialised | blocked ÷ kept |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        static nn.Module<Tensor, Tensor> Head() => nn.Sequential(
            ("0", nn.Linear(25088, 4096)), ("1", nn.ReLU()),
            ("2", nn.Linear(4096, 4096)), ("3", nn.ReLU()),
            ("4", nn.Linear(4096, 1000)));
        using var head = Head();
        using var copy = Twin(head, Head);
        var options = new SaliencyOptions { SaliencyLayer = "" };
        var explainer = new SaliencyExplainer(head);
        var target = SaliencyTarget.Class(1);
        foreach (var batch in new[] { 1, 8 })
        {
            using var x = torch.rand(batch, 25088);
            using var kept = new SaliencyExplainer(copy).OpenSession(options);
            var rounds = Harness.Interleaved(new Action[]
            {
                () => { using var s = torch.NewDisposeScope(); using var _ = torch.no_grad(); head.call(x); },
                () => { using var s = torch.NewDisposeScope(); explainer.Explain(x, target, options); },
                () => { using var s = torch.NewDisposeScope(); using var session = explainer.OpenSession(options); session.Explain(x, target); },
                () => { using var s = torch.NewDisposeScope(); kept.Explain(x, target); },
            }, warmup, runs);
            string Fwd(int k) => $"{rounds.Median(k):F0} ({rounds.PairedRatio(k, 0):F2}×)";
            Console.WriteLine($"| {batch} | {rounds.Median(0):F0} | {Fwd(1)} | {Fwd(2)} | {Fwd(3)} | {rounds.PairedRatio(1, 2):F2} | {rounds.PairedRatio(1, 3):F2} |");
        }
    }

    /// <summary>
    /// K classes of one image: one forward pass (ExplainEach) against K separate calls, and against the cost
    /// model F + Z + K·T, where Z and T each cost A (the multiply-accumulates above the saliency layer).
    /// </summary>
    public static void ManyClasses(int runs, int warmup)
    {
        Console.WriteLine();
        Console.WriteLine("## K classes of one image (batch 1)");
        Console.WriteLine();
        Console.WriteLine("| model | K | forward ms | K separate calls ms | one forward (ExplainEach) ms | speed-up | ExplainEach ×fwd | F + Z + K·T ×fwd | ExplainEach / (F + Z + K·T) | ExplainEach in a session ×fwd | session / (F + Z + K·T) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var (name, saliency, contrast) in Models)
        {
            using var model = ModelZoo.Create(name);
            using var copy = Twin(model, () => ModelZoo.Create(name));
            using var x = torch.rand(1, 3, 224, 224);
            var (total, above) = FlopCount.MacsAbove(model, x, saliency);
            double share = above / total;
            var explainer = new SaliencyExplainer(model);
            var options = Options(SaliencyMethod.ExcitationBackprop, saliency, contrast);
            using var session = new SaliencyExplainer(copy).OpenSession(options);
            foreach (var k in new[] { 1, 3, 10 })
            {
                var targets = Enumerable.Range(0, k).Select(c => SaliencyTarget.Class(c)).ToArray();
                void Forward() { using var s = torch.NewDisposeScope(); using var _ = torch.no_grad(); model.call(x); }
                void Separate() { foreach (var t in targets) { using var s = torch.NewDisposeScope(); explainer.Explain(x, t, options); } }
                void Together() { using var s = torch.NewDisposeScope(); explainer.ExplainEach(x, targets, options); }
                void InSession() { using var s = torch.NewDisposeScope(); session.ExplainEach(x, targets); }
                var rounds = Harness.Interleaved(new Action[] { Forward, Separate, Together, InSession }, warmup, runs);
                double costModel = 1 + (k + 1) * share;
                double together = rounds.PairedRatio(2, 0), inSession = rounds.PairedRatio(3, 0);
                Console.WriteLine($"| {name} @{saliency} | {k} | {rounds.Median(0):F0} | {rounds.Median(1):F0} | {rounds.Median(2):F0} | {rounds.PairedRatio(1, 2):F2}× | {together:F2} | {costModel:F2} | {together / costModel:F2} | {inSession:F2} | {inSession / costModel:F2} |");
            }
        }
    }

    /// <summary>Peak RSS per batch size (steady memory over many calls: <see cref="Soak"/>).</summary>
    public static void Memory(bool quick)
    {
        Console.WriteLine();
        Console.WriteLine("## Memory");
        Console.WriteLine();
        using (var model = ModelZoo.Create("vgg16"))
        {
            var explainer = new SaliencyExplainer(model);
            Console.WriteLine("| vgg16 EBP @features.16, batch | RSS after the call (MiB) | peak RSS so far (MiB) |");
            Console.WriteLine("|---|---|---|");
            foreach (var batch in quick ? new[] { 1 } : new[] { 1, 4, 8 })
            {
                using var s = torch.NewDisposeScope();
                using var x = torch.rand(batch, 3, 224, 224);
                explainer.Explain(x, SaliencyTarget.Class(1), new SaliencyOptions { SaliencyLayer = "features.16" });
                s.Dispose();
                Console.WriteLine($"| {batch} | {Harness.RssBytes() / 1048576.0:F0} | {Harness.PeakRssBytes() / 1048576.0:F0} |");
            }
        }
    }

    /// <summary>
    /// Steady memory over many calls of a small model (cluttered-MNIST-sized VGG, 1×80×80, batch 8, each call in a dispose
    /// scope): RSS after a collection every 500 calls, for plain forward passes (the baseline, same process), then EBP,
    /// then contrastive EBP. Growth per 1,000 calls is the least-squares slope of a phase's samples, the first taken after
    /// its first 500 calls (which include its warm-up); the ratio is the phase's last sample against its first.
    /// </summary>
    public static void Soak(bool quick)
    {
        int scale = quick ? 10 : 1, every = 500 / scale;
        using var small = new Vgg(new VggConfig(new object[] { 16, 16, "M", 32, 32, "M", 64, 64, "M" }, BatchNorm: true, InChannels: 1, Hidden: 128, NumClasses: 10, PoolHeight: 5, PoolWidth: 5));
        small.eval();
        var ex = new SaliencyExplainer(small);
        using var input = torch.rand(8, 1, 80, 80);
        var ebp = new SaliencyOptions { SaliencyLayer = "features.6" };
        var cebp = new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = "features.6", ContrastLayer = "classifier.4" };
        Console.WriteLine();
        Console.WriteLine($"## Soak (cluttered-MNIST-sized VGG, 1×80×80, batch 8, torch threads {torch.get_num_threads()})");
        Console.WriteLine();
        Console.WriteLine($"| phase | calls | RSS every {every:N0} calls (MiB) | growth per 1,000 calls (MiB, least squares) | last ÷ first |");
        Console.WriteLine("|---|---:|---|---:|---:|");
        void Phase(string name, int calls, Action<int> call)
        {
            var samples = new List<double>();
            for (int i = 1; i <= calls; i++)
            {
                using (var s = torch.NewDisposeScope()) call(i);
                if (i % every != 0) continue;
                GC.Collect();
                GC.WaitForPendingFinalizers();
                samples.Add(Harness.RssBytes() / 1048576.0);
            }
            // Least-squares slope over the samples (x = calls): one noisy sample moves it less than last − first does.
            double mx = (samples.Count - 1) / 2.0, my = samples.Average();
            double growth = samples.Count > 1
                ? samples.Select((v, k) => (k - mx) * (v - my)).Sum() / samples.Select((_, k) => (k - mx) * (k - mx)).Sum() * (1000.0 / every)
                : double.NaN;
            Console.WriteLine($"| {name} | {calls} | {string.Join(", ", samples.Select(v => v.ToString("F1")))} | {growth:+0.00;-0.00;0.00} | {samples[^1] / samples[0]:F3} |");
        }
        Phase("forward (baseline)", 2000 / scale, _ => { using var noGrad = torch.no_grad(); small.call(input); });
        Phase("EBP @features.6", 5000 / scale, i => ex.Explain(input, SaliencyTarget.Class(i % 10), ebp).Dispose());
        Phase("c-EBP @features.6 / classifier.4", 2000 / scale, i => ex.Explain(input, SaliencyTarget.Class(i % 10), cebp).Dispose());
    }
}
