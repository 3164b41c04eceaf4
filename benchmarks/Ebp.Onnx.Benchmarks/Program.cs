// EBP on an imported ONNX ResNet-50 against the native zoo model with the same weights, interleaved in one run.
// Usage: dotnet run -c Release --project benchmarks/Ebp.Onnx.Benchmarks -- <resnet50.onnx> [--runs N] [--threads T]
// Make the model with: /usr/bin/python3 tests/Ebp.Onnx.Tests/generate_fixtures.py --benchmark /tmp/resnet50_bench.onnx
using System.CommandLine;
using System.Diagnostics;
using Ebp;
using Ebp.Models;
using Ebp.Onnx;
using Ebp.Weights;
using TorchSharp;
using static TorchSharp.torch;

var modelArgument = new Argument<string>("MODEL") { Description = "The ResNet-50 ONNX file (generate_fixtures.py --benchmark)." };
var runsOption = new Option<int>("--runs") { Description = "Timed calls per case (medians).", DefaultValueFactory = _ => 7 };
var threadsOption = new Option<int>("--threads") { Description = "Torch intra-op threads.", DefaultValueFactory = _ => 1 };
var root = new RootCommand("EBP on an imported ONNX ResNet-50 against the native zoo model with the same weights, interleaved in one run.")
{
    modelArgument, runsOption, threadsOption,
};
var parsed = root.Parse(args);
// Without an action of our own, the parse result has one only for --help or a parse error: print and stop.
if (parsed.Action is not null) return parsed.Invoke() == 0 ? 0 : 2;
int runs = parsed.GetValue(runsOption), threads = parsed.GetValue(threadsOption);
string modelPath = parsed.GetValue(modelArgument)!;
torch.set_num_threads(threads);

using var onnx = OnnxModel.Load(modelPath);
using var native = ModelZoo.Create("resnet50");
var state = onnx.Module.state_dict();
WeightLoader.LoadStateDict(native, native.state_dict().Keys.Where(k => !k.EndsWith("num_batches_tracked")).ToDictionary(k => k, k => state[k]), strict: false);
native.eval();

var image = torch.rand(1, 3, 224, 224, generator: new Generator(1));
var cases = new (string Name, SaliencyOptions Options)[]
{
    ("EBP layer3", new SaliencyOptions { SaliencyLayer = "layer3" }),
    ("c-EBP layer3/avgpool", new SaliencyOptions { Method = SaliencyMethod.ContrastiveExcitationBackprop, SaliencyLayer = "layer3", ContrastLayer = "avgpool" }),
};
Console.WriteLine($"threads {threads}, runs {runs} (medians, ms; imported and native interleaved)");
foreach (var (name, options) in cases)
{
    var onnxExplainer = new SaliencyExplainer(onnx.Module);
    var nativeExplainer = new SaliencyExplainer(native);
    double Time(SaliencyExplainer e)
    {
        using var scope = torch.NewDisposeScope();
        var sw = Stopwatch.StartNew();
        using var r = e.Explain(image, SaliencyTarget.Class(1), options);
        return sw.Elapsed.TotalMilliseconds;
    }
    Time(onnxExplainer); Time(nativeExplainer); // warm-up
    var a = new List<double>(); var b = new List<double>();
    for (int i = 0; i < runs; i++) { a.Add(Time(onnxExplainer)); b.Add(Time(nativeExplainer)); }
    double ma = a.Order().ElementAt(runs / 2), mb = b.Order().ElementAt(runs / 2);
    Console.WriteLine($"{name,-22} imported {ma,8:F1}  native {mb,8:F1}  ratio {ma / mb:F3}");
}
return 0;
