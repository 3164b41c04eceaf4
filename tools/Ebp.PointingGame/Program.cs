using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Ebp.Datasets;
using Ebp.Evaluation;
using TorchSharp;

// The pointing game (Zhang et al. 2016) for a model card.
//
// Cluttered MNIST (t10k scenes):
//   dotnet run -c Release --project tools/Ebp.PointingGame -- [--model models/cluttered-mnist-vgg.json] [--scenes 2000]
//       [--batch 25] [--methods center,gradient,ebp,cebp] [--markdown FILE]
// Your own data, a PASCAL VOC-style folder (Annotations/*.xml + JPEGImages/, or XML next to each image):
//   dotnet run -c Release --project tools/Ebp.PointingGame -- --voc FOLDER --model CARD.json [--classes a,b,c | --classes-file FILE]
//       [--tolerance PX]
// Common: --saliency-layer / --contrast-layer / --classifier-layer override the card's layers; --threads N;
// --mnist DIR (MNIST folder; default the scripts/fetch-mnist.sh cache, else the committed 200-digit subset
// samples/Ebp.Demo/data/mnist-t10k-subset, or the folder given with --subset DIR).
// Idle OpenMP threads must sleep, not spin, on a shared host: set before libtorch loads.
Ebp.Threading.TorchThreads.PreferPassiveWaiting();
var inv = CultureInfo.InvariantCulture;
var modelOption = new Option<string?>("--model") { Description = "Model card JSON (default: models/cluttered-mnist-vgg.json)." };
var vocOption = new Option<string?>("--voc") { Description = "A PASCAL VOC-style folder (Annotations/*.xml + JPEGImages/, VOCdevkit/VOC20xx, or XML next to each image)." };
var classesOption = new Option<string?>("--classes") { Description = "VOC: class names in the model's order, comma-separated (default: the card's)." };
var classesFileOption = new Option<string?>("--classes-file") { Description = "VOC: a text file with one class name per line." };
var mnistOption = new Option<string?>("--mnist") { Description = "MNIST folder (default: the scripts/fetch-mnist.sh cache, else the committed 200-digit subset)." };
var subsetOption = new Option<string?>("--subset") { Description = "Folder of the committed t10k subset to fall back to." };
var pointsOption = new Option<string?>("--points") { Description = "CSV per trial: image,class,method,x,y,hit." };
var markdownOption = new Option<string?>("--markdown") { Description = "Also write the tables as Markdown to this file." };
var methodsOption = new Option<string>("--methods") { Description = "Comma-separated: center, gradient, gradient-signed, ebp, cebp.", DefaultValueFactory = _ => "center,gradient,ebp,cebp" };
var saliencyOption = new Option<string?>("--saliency-layer") { Description = "Override the card's saliency layer." };
var contrastOption = new Option<string?>("--contrast-layer") { Description = "Override the card's contrast layer." };
var classifierOption = new Option<string?>("--classifier-layer") { Description = "Override the card's classifier layer." };
var scenesOption = new Option<int>("--scenes") { Description = "Cluttered-MNIST test scenes.", DefaultValueFactory = _ => 2000 };
var batchOption = new Option<int>("--batch") { Description = "Scenes per forward/backward pass.", DefaultValueFactory = _ => 25 };
var threadsOption = new Option<int?>("--threads") { Description = "Torch intra-op threads (default: the CPUs this process may use, container quota included)." };
var toleranceOption = new Option<double?>("--tolerance") { Description = "Hit tolerance in pixels (default: 15 px at 224, scaled)." };
var root = new RootCommand("The pointing game (Zhang et al. 2016) for a model card, on cluttered-MNIST test scenes or a PASCAL VOC-style folder.")
{
    modelOption, vocOption, classesOption, classesFileOption, mnistOption, subsetOption, pointsOption, markdownOption, methodsOption,
    saliencyOption, contrastOption, classifierOption, scenesOption, batchOption, threadsOption, toleranceOption,
};
var parsed = root.Parse(args);
// Without an action of our own, the parse result has one only for --help or a parse error: print and stop.
if (parsed.Action is not null) return parsed.Invoke() == 0 ? 0 : 2;
string? modelPath = parsed.GetValue(modelOption), voc = parsed.GetValue(vocOption), classesList = parsed.GetValue(classesOption);
string? classesFile = parsed.GetValue(classesFileOption), mnistDir = parsed.GetValue(mnistOption), subsetDir = parsed.GetValue(subsetOption);
string? markdown = parsed.GetValue(markdownOption), pointsPath = parsed.GetValue(pointsOption);
string? saliencyLayer = parsed.GetValue(saliencyOption), contrastLayer = parsed.GetValue(contrastOption), classifierLayer = parsed.GetValue(classifierOption);
string methodList = parsed.GetValue(methodsOption)!;
int scenesCount = parsed.GetValue(scenesOption), batch = parsed.GetValue(batchOption);
int? threads = parsed.GetValue(threadsOption);
double? tolerance = parsed.GetValue(toleranceOption);

try
{
    Ebp.Threading.TorchThreads.Configure(threads);
    using var pointsCsv = pointsPath is null ? null : new PointsCsvWriter(pointsPath);
    modelPath ??= FindDefaultModel();
    using var loaded = LoadedModel.Load(modelPath);
    var card = loaded.Card;
    saliencyLayer ??= card.Saliency.SaliencyLayer;
    contrastLayer ??= card.Saliency.ContrastLayer;
    classifierLayer ??= card.Saliency.ClassifierLayer;
    var methods = PointingMethod.Parse(methodList, saliencyLayer, contrastLayer, classifierLayer);
    Console.WriteLine($"Model: {Path.GetFullPath(modelPath)} ({card.Name}); saliency layer {saliencyLayer}, contrast layer {contrastLayer}, classifier {classifierLayer ?? "auto"}");
    Console.WriteLine($"Machine: {SceneData.Machine()}");
    if (card.Input.Normalization is { } norm)
        Console.WriteLine($"Input: (pixel/255 - mean) / std with mean {string.Join(", ", norm.Mean)}, std {string.Join(", ", norm.Std)} (from the card)");

    var clock = Stopwatch.StartNew();
    void Progress(PointingMethod m, int done)
    {
        if (done % 500 == 0) Console.Error.WriteLine($"  {m.Name}: {done} images, {clock.Elapsed.TotalSeconds:F0} s");
    }

    if (voc is not null)
    {
        var classNames = classesList is not null
            ? classesList.Split(',', StringSplitOptions.TrimEntries).ToList()
            : classesFile is not null
                ? File.ReadAllLines(classesFile).Select(l => l.Trim()).Where(l => l.Length > 0).ToList()
                : card.ClassNames;
        var items = VocEvaluator.Scan(voc);
        double tol = tolerance ?? 15.0 * card.Input.Width / 224.0;
        Console.WriteLine($"VOC folder {Path.GetFullPath(voc)}: {items.Count} images; classes {string.Join(",", classNames)}; tolerance {tol.ToString("F2", inv)} px");
        var results = VocEvaluator.Run(loaded.Model, classNames, card.Input.Channels, items, methods, tol, out int skipped, Progress, card.Input.Normalization, pointsCsv is null ? null : pointsCsv.Write);
        if (skipped > 0) Console.WriteLine($"({skipped} annotated objects have a class the model does not know; skipped)");
        Console.WriteLine();
        Console.WriteLine(Report.Table(results));
        Console.WriteLine(Report.PerClassTable(results, classNames));
        Console.WriteLine("difficult = the class's boxes cover < 1/4 of the image and another class is present (the paper's definition).");
        return 0;
    }

    var (test, source) = SceneData.LoadTest(mnistDir, subsetDir ?? FindAbove("samples/Ebp.Demo/data/mnist-t10k-subset"));
    var scenes = ClutteredMnistGenerator.ForTest(test).Generate(scenesCount, SceneData.TestSceneSeed);
    var difficult = Ebp.Datasets.PointingGame.DefaultDifficultPredicate(scenes);
    int trials = scenes.Sum(s => s.Digits.Count), hard = scenes.Sum(s => s.Digits.Count(d => difficult(s, d)));
    double tolerancePx = tolerance ?? Ebp.Datasets.PointingGame.ScaledTolerance(scenes[0].Width);
    Console.WriteLine($"Data: {scenesCount} cluttered-MNIST test scenes (seed {SceneData.TestSceneSeed}) from {source}; {trials} trials, {hard} difficult; tolerance {tolerancePx.ToString("F2", inv)} px");

    var scores = SceneData.Scores(loaded.Model, scenes, normalization: card.Input.Normalization);
    var labels = scenes.Select(s => s.MultiHot).ToList();
    var (mAP, perClassAp) = AveragePrecision.Mean(scores, labels);
    Console.WriteLine($"mAP {mAP.ToString("F4", inv)} (AP per class: {string.Join(" ", perClassAp.Select(a => a.ToString("F3", inv)))}); " +
                      $"exact label set in top-k: {AveragePrecision.ExactSetAccuracy(scores, labels).ToString("P1", inv)}");

    var clutteredResults = PointingEvaluator.Run(loaded.Model, scenes, methods, batch, tolerancePx, difficult, Progress, card.Input.Normalization, pointsCsv is null ? null : pointsCsv.Write);
    string table = Report.Table(clutteredResults);
    string perClass = Report.PerClassTable(clutteredResults, card.ClassNames);
    Console.WriteLine();
    Console.WriteLine(table);
    Console.WriteLine(perClass);
    Console.WriteLine($"Total time {clock.Elapsed.TotalSeconds:F0} s.");

    if (markdown is not null)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"Command: `dotnet run -c Release --project tools/Ebp.PointingGame -- {string.Join(' ', args)}`".Replace("--  ", "-- "));
        sb.AppendLine();
        sb.AppendLine($"Machine: {SceneData.Machine()}; {DateTime.UtcNow.ToString("yyyy-MM-dd", inv)}.");
        sb.AppendLine();
        sb.AppendLine($"Model: `{Path.GetFileName(modelPath)}` ({card.Weights}, sha256 `{card.WeightsSha256}`).");
        sb.AppendLine($"Data: {scenesCount} test scenes (seed {SceneData.TestSceneSeed}) from {source.Replace(Path.GetDirectoryName(MnistSource.DefaultDirectory) ?? "\u0000", "~/.cache/ebp")}; " +
                      $"{trials} (scene, digit) trials, {hard} of them difficult; tolerance {tolerancePx.ToString("F2", inv)} px.");
        sb.AppendLine($"Classification on the same scenes: mAP **{mAP.ToString("F4", inv)}**.");
        sb.AppendLine();
        sb.Append(table);
        sb.AppendLine();
        sb.AppendLine("Per class (all trials):");
        sb.AppendLine();
        sb.Append(perClass);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(markdown))!);
        File.WriteAllText(markdown, sb.ToString());
        Console.WriteLine($"Wrote {markdown}.");
    }
    return 0;
}
catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException
                              or System.Xml.XmlException or Ebp.EbpRuleException or NotSupportedException or InvalidOperationException)
{
    // Bad input (a missing folder, a malformed card or annotation, an unknown layer): one line, no stack trace.
    Console.Error.WriteLine($"error: {e.Message.Split('\n')[0].TrimEnd()}");
    return 1;
}

static string? FindAbove(string relative)
{
    for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
        if (Directory.Exists(Path.Combine(dir.FullName, relative))) return Path.Combine(dir.FullName, relative);
    return null;
}

static string FindDefaultModel()
{
    const string relative = "models/cluttered-mnist-vgg.json";
    for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
    {
        var candidate = Path.Combine(dir.FullName, relative);
        if (File.Exists(candidate)) return candidate;
    }
    throw new FileNotFoundException($"No --model given and {relative} was not found above the current directory.");
}
