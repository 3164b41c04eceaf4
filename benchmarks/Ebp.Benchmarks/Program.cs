using Ebp;
using Ebp.Benchmarks;
using Ebp.Models;
using TorchSharp;
using static TorchSharp.torch;

// dotnet run -c Release --project benchmarks/Ebp.Benchmarks -- [--runs N] [--warmup N] [--threads N] [--quick]
int runs = 5, warmup = 1, threads = 2;
bool quick = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--runs": runs = int.Parse(args[++i]); break;
        case "--warmup": warmup = int.Parse(args[++i]); break;
        case "--threads": threads = int.Parse(args[++i]); break;
        case "--quick": quick = true; break;
        default: Console.Error.WriteLine($"unknown argument {args[i]}"); return 2;
    }
}
torch.set_num_threads(threads);
torch.manual_seed(0);
Console.WriteLine($"# Ebp baseline benchmark — {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
Console.WriteLine($"machine: {Environment.ProcessorCount} logical CPUs, {Environment.OSVersion}, .NET {Environment.Version}, torch threads {threads}; runs {runs}, warm-up {warmup}; random weights");
Console.WriteLine();
Console.WriteLine("| model | batch | forward ms | gradient ms (×fwd) | EBP ms (×fwd) | c-EBP ms (×fwd) | c-EBP / EBP |");
Console.WriteLine("|---|---|---|---|---|---|---|");

var cases = new (string Model, string Saliency, string Contrast)[] { ("vgg16", "features.16", "classifier.4"), ("resnet50", "layer2", "avgpool") };
foreach (var (name, saliency, contrast) in cases)
{
    using var model = ModelZoo.Create(name);
    model.eval();
    foreach (var batch in quick ? new[] { 1 } : new[] { 1, 8 })
    {
        using var x = torch.rand(batch, 3, 224, 224);
        var explainer = new SaliencyExplainer(model);
        var target = SaliencyTarget.Class(1);
        void Forward() { using var s = torch.NewDisposeScope(); using var _ = torch.no_grad(); model.call(x); }
        void Run(SaliencyMethod m) { using var s = torch.NewDisposeScope(); explainer.Explain(x, target, new SaliencyOptions { Method = m, SaliencyLayer = saliency, ContrastLayer = m == SaliencyMethod.ContrastiveExcitationBackprop ? contrast : null }); }
        var medians = Harness.InterleavedMediansMs(new Action[]
        {
            Forward,
            () => Run(SaliencyMethod.Gradient),
            () => Run(SaliencyMethod.ExcitationBackprop),
            () => Run(SaliencyMethod.ContrastiveExcitationBackprop),
        }, warmup, runs);
        double f = medians[0];
        Console.WriteLine($"| {name} @{saliency} / {contrast} | {batch} | {f:F0} | {medians[1]:F0} ({medians[1] / f:F2}×) | {medians[2]:F0} ({medians[2] / f:F2}×) | {medians[3]:F0} ({medians[3] / f:F2}×) | {medians[3] / medians[2]:F2} |");
    }
}
Console.WriteLine();
Console.WriteLine($"peak RSS: {Harness.PeakRssBytes() / (1024.0 * 1024):F0} MiB");
return 0;
