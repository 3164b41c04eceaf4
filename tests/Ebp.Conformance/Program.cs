using Ebp.Conformance;
using TorchSharp;

// dotnet run -c Release --project tests/Ebp.Conformance -- <cases-folder> <output-folder>
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: Ebp.Conformance <cases-folder> <output-folder>");
    Console.Error.WriteLine("  Runs every case of <cases-folder>/cases.json, writes <output-folder>/<case>.safetensors (tensor 'saliency'),");
    Console.Error.WriteLine("  prints PASS/FAIL for each case that has 'expected', and exits 1 on any failure or unsupported case.");
    return 2;
}
string folder = args[0], output = args[1];
var casesJson = Path.Combine(folder, "cases.json");
if (!File.Exists(casesJson))
{
    Console.Error.WriteLine($"error: {casesJson} not found; <cases-folder> must hold cases.json and the case files.");
    return 2;
}
Directory.CreateDirectory(output);

int failed = 0, passed = 0, written = 0;
foreach (var c in ConformanceCase.Load(casesJson))
{
    var outcome = CaseRunner.Run(c, folder);
    if (outcome.Map is { } map)
    {
        var path = Path.Combine(output, c.Name + ".safetensors");
        var tmp = path + ".tmp";
        TorchSharp.PyBridge.Safetensors.SaveStateDict(tmp, new Dictionary<string, torch.Tensor> { ["saliency"] = map });
        File.Move(tmp, path, overwrite: true);
        map.Dispose();
        written++;
    }
    if (outcome.Unsupported) { failed++; Console.WriteLine($"UNSUPPORTED {c.Name}: {outcome.Error}"); }
    else if (outcome.Error is not null && !outcome.HasExpected) { failed++; Console.WriteLine($"FAIL {c.Name}: {outcome.Error}"); }
    else if (outcome.HasExpected && outcome.Passed) { passed++; Console.WriteLine($"PASS {c.Name} ({outcome.RelativeError:E2})"); }
    else if (outcome.HasExpected) { failed++; Console.WriteLine($"FAIL {c.Name}: {outcome.Error}"); }
    else Console.WriteLine($"DONE {c.Name} (no expected map)");
}
Console.WriteLine($"{passed} passed, {failed} failed; {written} maps written to {output}");
return failed == 0 ? 0 : 1;
