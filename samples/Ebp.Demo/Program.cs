using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Ebp;
using Ebp.Datasets;
using Ebp.Evaluation;
using Ebp.Visualization;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

// Ebp demo: a real model on real data.
//
//   scripts/demo.sh [--out out/demo] [--figures 6] [--scenes 300]
//
// 1. Loads the committed cluttered-MNIST classifier (models/cluttered-mnist-vgg.json + .safetensors; trained by
//    tools/Ebp.Train, nothing is trained or downloaded here).
// 2. Builds test scenes from MNIST t10k (the full set if scripts/fetch-mnist.sh has cached it, else the committed
//    200-digit subset).
// 3. Explains a few scenes with Excitation Backprop and contrastive EBP and writes side-by-side PNG figures.
// 4. Plays the pointing game on a few hundred scenes and prints the table.
// Idle OpenMP threads must sleep, not spin, on a shared host: set before libtorch loads.
Ebp.Threading.TorchThreads.PreferPassiveWaiting();
var inv = CultureInfo.InvariantCulture;
var total = Stopwatch.StartNew();
var outOption = new Option<string>("--out") { Description = "Folder for the figures.", DefaultValueFactory = _ => Path.Combine("out", "demo") };
var modelOption = new Option<string>("--model") { Description = "Model card JSON.", DefaultValueFactory = _ => Path.Combine(AppContext.BaseDirectory, "models", "cluttered-mnist-vgg.json") };
var mnistOption = new Option<string?>("--mnist") { Description = "Folder with the MNIST IDX files (default: the cache of scripts/fetch-mnist.sh, else the committed subset)." };
var figuresOption = new Option<int>("--figures") { Description = "Scenes to draw as figures.", DefaultValueFactory = _ => 6 };
var scenesOption = new Option<int>("--scenes") { Description = "Scenes for the pointing game.", DefaultValueFactory = _ => 300 };
var threadsOption = new Option<int?>("--threads") { Description = "Torch intra-op threads (default: the CPUs this process may use, container quota included)." };
var root = new RootCommand("Ebp demo: explains cluttered-MNIST test scenes with EBP and contrastive EBP, writes figures, prints the pointing game.")
{
    outOption, modelOption, mnistOption, figuresOption, scenesOption, threadsOption,
};
var parsed = root.Parse(args);
// Without an action of our own, the parse result has one only for --help or a parse error: print and stop.
if (parsed.Action is not null) return parsed.Invoke();
string outDir = parsed.GetValue(outOption)!;
string modelPath = parsed.GetValue(modelOption)!;
string? mnistDir = parsed.GetValue(mnistOption);
int figures = parsed.GetValue(figuresOption), pointingScenes = parsed.GetValue(scenesOption);
int? threads = parsed.GetValue(threadsOption);
Ebp.Threading.TorchThreads.Configure(threads);

// --- 1. The model: architecture from the card's JSON spec, weights loaded strictly. -----------------------------
using var loaded = LoadedModel.Load(modelPath);
var card = loaded.Card;
var model = loaded.Model;
Console.WriteLine($"Model      {card.Name}: {card.Description}");
Console.WriteLine($"           test mAP {card.Evaluation?["mAP"]} (card); saliency layer {card.Saliency.SaliencyLayer}, contrast layer {card.Saliency.ContrastLayer}");

// --- 2. Test scenes from t10k only. -------------------------------------------------------------------------------
var (test, source) = SceneData.LoadTest(mnistDir, Path.Combine(AppContext.BaseDirectory, "data", "mnist-t10k-subset"));
var generator = ClutteredMnistGenerator.ForTest(test);
int needed = Math.Max(figures, pointingScenes);
var scenes = generator.Generate(needed, SceneData.TestSceneSeed);
Console.WriteLine($"Data       {source}");
Console.WriteLine($"           {needed} cluttered scenes {scenes[0].Width}×{scenes[0].Height}, seed {SceneData.TestSceneSeed}");

// --- 3. Figures: input | EBP | c-EBP for each digit present. -----------------------------------------------------
var explainer = new SaliencyExplainer(model);
var ebp = new SaliencyOptions
{
    Method = SaliencyMethod.ExcitationBackprop,
    SaliencyLayer = card.Saliency.SaliencyLayer,
    Resize = MapSize.Input,
};
var cebp = ebp with
{
    Method = SaliencyMethod.ContrastiveExcitationBackprop,
    ContrastLayer = card.Saliency.ContrastLayer,
    ClassifierLayer = card.Saliency.ClassifierLayer,
};
Directory.CreateDirectory(outDir);
var figureClock = Stopwatch.StartNew();
for (int s = 0; s < Math.Min(figures, scenes.Count); s++)
{
    var scene = scenes[s];
    using var scope = torch.NewDisposeScope();
    var x = SceneData.ToTensor([scene]);                                     // [1, 1, 80, 80], pixel/255
    var classes = scene.Digits.Select(d => d.ClassId).ToArray();
    var targets = classes.Select(c => SaliencyTarget.Pointing(c)).ToList();  // every digit present, one forward pass
    var ebpMaps = explainer.ExplainEach(x, targets, ebp);
    var cebpMaps = explainer.ExplainEach(x, targets, cebp);
    var probs = torch.sigmoid(ebpMaps[0].Scores)[0].data<float>().ToArray();

    using var input = Heatmap.Grey(scene.Pixels, scene.Width, scene.Height);
    var panels = new List<(SKBitmap Image, string Caption)> { (input, "input") };
    var owned = new List<SKBitmap>();
    var line = new List<string>();
    for (int k = 0; k < classes.Length; k++)
    {
        string name = card.ClassNames[classes[k]];
        var e = ebpMaps[k].MapToArray();
        var c = cebpMaps[k].MapToArray();
        var eImg = Heatmap.Overlay(input, e, scene.Width, scene.Height);
        var cImg = Heatmap.Overlay(input, c, scene.Width, scene.Height);
        owned.Add(eImg);
        owned.Add(cImg);
        panels.Add((eImg, $"EBP '{name}' p={probs[classes[k]]:F2}"));
        panels.Add((cImg, $"c-EBP '{name}' p={probs[classes[k]]:F2}"));
        bool hit(float[] m)
        {
            var (px, py) = Ebp.Datasets.PointingGame.ArgMax(m, scene.Width, scene.Height);
            return Ebp.Datasets.PointingGame.IsHit(scene.Digits[k].InkMask, scene.Width, scene.Height, px, py,
                Ebp.Datasets.PointingGame.ScaledTolerance(scene.Width));
        }
        line.Add($"'{name}' p={probs[classes[k]]:F2} EBP {(hit(e) ? "hit" : "miss")}, c-EBP {(hit(c) ? "hit" : "miss")}");
    }
    var top = Enumerable.Range(0, probs.Length).Where(c => probs[c] >= 0.5).Select(c => card.ClassNames[c]);
    string title = $"scene {scene.Index}: digits {string.Join(", ", classes.Select(c => card.ClassNames[c]))}; " +
                   $"predicted (p≥0.5): {string.Join(", ", top)}";
    using var figure = Figure.SideBySide(panels, panelSize: 160, title: title);
    string path = Path.Combine(outDir, $"scene-{s:D2}.png");
    Figure.SavePng(figure, path);
    Console.WriteLine($"Figure     {path}: {string.Join("; ", line)}");
    foreach (var b in owned) b.Dispose();
    foreach (var r in ebpMaps.Concat(cebpMaps)) r.Dispose();
}
Console.WriteLine($"           {Math.Min(figures, scenes.Count)} figures in {figureClock.Elapsed.TotalSeconds:F1} s");

// --- 4. The pointing game on the first `pointingScenes` scenes. -------------------------------------------------
if (pointingScenes > 0)
{
    var evalScenes = scenes.Take(pointingScenes).ToList();
    var methods = PointingMethod.Standard(card.Saliency.SaliencyLayer, card.Saliency.ContrastLayer, card.Saliency.ClassifierLayer);
    var scores = SceneData.Scores(model, evalScenes);
    var (mAP, _) = AveragePrecision.Mean(scores, evalScenes.Select(e => e.MultiHot).ToList());
    int trials = evalScenes.Sum(e => e.Digits.Count);
    var difficult = Ebp.Datasets.PointingGame.DefaultDifficultPredicate(evalScenes);
    int hard = evalScenes.Sum(e => e.Digits.Count(d => difficult(e, d)));
    var pointingClock = Stopwatch.StartNew();
    var results = PointingEvaluator.Run(model, evalScenes, methods, batch: 25, isDifficult: difficult);
    Console.WriteLine();
    Console.WriteLine($"Pointing game on {evalScenes.Count} test scenes ({trials} digits, {hard} difficult; hit = argmax within " +
                      $"{Ebp.Datasets.PointingGame.ScaledTolerance(evalScenes[0].Width).ToString("F2", inv)} px of the digit's ink); " +
                      $"classification mAP on these scenes {mAP.ToString("F3", inv)}:");
    Console.WriteLine();
    Console.Write(Report.Table(results));
    Console.WriteLine();
    Console.WriteLine($"({pointingClock.Elapsed.TotalSeconds:F1} s; accuracy = mean over classes of hits/trials; see docs/POINTING_GAME.md for 2000 scenes)");
}
Console.WriteLine($"Done in {total.Elapsed.TotalSeconds:F1} s. Figures: {Path.GetFullPath(outDir)}");
return 0;
