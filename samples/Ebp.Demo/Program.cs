using System.Diagnostics;
using System.Globalization;
using Ebp;
using Ebp.Datasets;
using Ebp.PointingGame;
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
var inv = CultureInfo.InvariantCulture;
var total = Stopwatch.StartNew();
string outDir = Path.Combine("out", "demo");
string modelPath = Path.Combine(AppContext.BaseDirectory, "models", "cluttered-mnist-vgg.json");
string? mnistDir = null;
int figures = 6, pointingScenes = 300, threads = 2;
for (int i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
    switch (args[i])
    {
        case "--out": outDir = Next(); break;
        case "--model": modelPath = Next(); break;
        case "--mnist": mnistDir = Next(); break;
        case "--figures": figures = int.Parse(Next(), inv); break;
        case "--scenes": pointingScenes = int.Parse(Next(), inv); break;
        case "--threads": threads = int.Parse(Next(), inv); break;
        case "-h" or "--help":
            Console.WriteLine("scripts/demo.sh [--out out/demo] [--figures 6] [--scenes 300] [--model CARD.json] [--mnist DIR] [--threads 2]");
            return 0;
        default:
            Console.Error.WriteLine($"Unknown argument '{args[i]}' (try --help).");
            return 2;
    }
}
torch.set_num_threads(threads);

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
