using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Ebp.Datasets;
using Ebp.Models;
using Ebp.Evaluation;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

// Trains the cluttered-MNIST VGG classifier (multi-label, one sigmoid per digit class) and writes
// <out>.safetensors + <out>.json (the model card). Reproducible from the seeds below:
//
//   dotnet run -c Release --project tools/Ebp.Train -- --out models/cluttered-mnist-vgg.safetensors
//
// Options: --steps N (default 2500) --batch N (64) --lr X (0.002) --seed N (torch seed, 1) --scene-seed N (training
// scenes, 1) --test-scenes N (2000) --threads N (2) --mnist DIR (default: the fetch-mnist.sh cache) --log-every N (100)
// --bench N (time N steps and exit, nothing written). About 15 minutes on an idle 2-core machine; needs the full MNIST
// cache (scripts/fetch-mnist.sh). Same options, machine and thread count → byte-identical weights.
// Idle OpenMP threads must sleep, not spin, on a shared host: set before libtorch loads.
Ebp.Threading.TorchThreads.PreferPassiveWaiting();
var culture = CultureInfo.InvariantCulture;
var outOption = new Option<string>("--out") { Description = "Weights file to write (the model card goes beside it as .json).", DefaultValueFactory = _ => "models/cluttered-mnist-vgg.safetensors" };
var stepsOption = new Option<int>("--steps") { Description = "Training steps.", DefaultValueFactory = _ => 2500 };
var batchOption = new Option<int>("--batch") { Description = "Scenes per step.", DefaultValueFactory = _ => 64 };
var lrOption = new Option<double>("--lr") { Description = "Adam learning rate.", DefaultValueFactory = _ => 0.002 };
var seedOption = new Option<long>("--seed") { Description = "Torch seed (initial weights).", DefaultValueFactory = _ => 1 };
var sceneSeedOption = new Option<ulong>("--scene-seed") { Description = "Seed of the training scenes.", DefaultValueFactory = _ => 1 };
var testScenesOption = new Option<int>("--test-scenes") { Description = "Test scenes for the mAP of the card.", DefaultValueFactory = _ => 2000 };
var threadsOption = new Option<int>("--threads") { Description = "Torch intra-op threads.", DefaultValueFactory = _ => 2 };
var mnistOption = new Option<string?>("--mnist") { Description = "Folder with the MNIST IDX files (default: the cache of scripts/fetch-mnist.sh)." };
var benchOption = new Option<int>("--bench") { Description = "Time N steps and exit; nothing is written.", DefaultValueFactory = _ => 0 };
var logEveryOption = new Option<int>("--log-every") { Description = "Steps between loss lines.", DefaultValueFactory = _ => 100 };
var root = new RootCommand("Trains the cluttered-MNIST VGG classifier of models/ with TorchSharp (seeded, reproducible).")
{
    outOption, stepsOption, batchOption, lrOption, seedOption, sceneSeedOption, testScenesOption, threadsOption, mnistOption, benchOption, logEveryOption,
};
var parsed = root.Parse(args);
// Without an action of our own, the parse result has one only for --help or a parse error: print and stop.
if (parsed.Action is not null) return parsed.Invoke();
string outPath = parsed.GetValue(outOption)!;
int steps = parsed.GetValue(stepsOption), batch = parsed.GetValue(batchOption), threads = parsed.GetValue(threadsOption);
int testScenes = parsed.GetValue(testScenesOption), bench = parsed.GetValue(benchOption), logEvery = parsed.GetValue(logEveryOption);
double lr = parsed.GetValue(lrOption);
long seed = parsed.GetValue(seedOption);
ulong sceneSeed = parsed.GetValue(sceneSeedOption);
string? mnistDir = parsed.GetValue(mnistOption);

torch.set_num_threads(threads);
torch.manual_seed(seed);

// The architecture: VGG-style, batch norm, 80×80 grey input → 10×10×64 features → global average pool → 128 → 128 → 10.
var spec = new JsonObject
{
    ["kind"] = "vgg",
    ["cfg"] = new JsonArray(16, 16, "M", 32, 32, "M", 64, 64, "M"),
    ["batch_norm"] = true,
    ["in_channels"] = 1,
    ["hidden"] = 128,
    ["num_classes"] = 10,
    ["pool_size"] = new JsonArray(1, 1),
    ["dropout"] = 0.0,
};
var config = ModelSpec.ParseVgg(System.Text.Json.JsonDocument.Parse(spec.ToJsonString()).RootElement);
using var model = new Vgg(config);
// Vgg initialises its linear layers as torchvision does, N(0, 0.01). For this small network that leaves the output
// nearly constant and training sat at the label prior (loss 0.562) for hundreds of steps; PyTorch's default
// nn.Linear initialisation, U(±1/√fan_in) for weight and bias, starts learning at once.
using (torch.no_grad())
{
    foreach (var (_, module) in model.named_modules())
    {
        if (module is not TorchSharp.Modules.Linear linear) continue;
        double bound = 1.0 / Math.Sqrt(linear.in_features);
        nn.init.uniform_(linear.weight!, -bound, bound);
        if (linear.bias is not null) nn.init.uniform_(linear.bias, -bound, bound);
    }
}
model.train();
long parameterCount = model.parameters().Sum(p => p.numel());

var train = MnistSource.LoadTrain(mnistDir);
var generator = ClutteredMnistGenerator.ForTraining(train);
Console.WriteLine($"Training data: MNIST train ({train.Count} digits), cluttered scenes {generator.Options.CanvasSize}×{generator.Options.CanvasSize}, scene seed {sceneSeed}, " +
                  $"{(bench > 0 ? bench : steps)} steps × batch {batch} (scene i of step s = index s·{batch}+i, each scene seen once).");
Console.WriteLine($"Model: {spec.ToJsonString()}, {parameterCount:N0} parameters; torch seed {seed}; threads {threads}; Adam lr {lr} (1 % warm-up, cosine decay).");

var optimizer = torch.optim.Adam(model.parameters(), lr);
using var lossFunction = nn.BCEWithLogitsLoss();

// Scenes of step s+1 are generated on a worker while step s trains; scene content depends only on (seed, index).
Task<IReadOnlyList<ClutteredScene>> Prefetch(int step) =>
    Task.Run(() => generator.Generate(batch, sceneSeed, (long)step * batch));

int totalSteps = bench > 0 ? bench : steps;
int warmup = Math.Max(1, totalSteps / 100);
var clock = Stopwatch.StartNew();
var next = Prefetch(0);
double runningLoss = 0;
int runningCount = 0;
for (int step = 0; step < totalSteps; step++)
{
    var scenes = next.Result;
    if (step + 1 < totalSteps) next = Prefetch(step + 1);

    double factor = step < warmup ? (step + 1.0) / warmup : 0.5 * (1 + Math.Cos(Math.PI * (step - warmup) / Math.Max(1, totalSteps - warmup)));
    foreach (var group in optimizer.ParamGroups) group.LearningRate = lr * factor;

    using (var scope = torch.NewDisposeScope())
    {
        var x = SceneData.ToTensor(scenes);
        var y = SceneData.Labels(scenes);
        optimizer.zero_grad();
        var loss = lossFunction.call(model.call(x), y);
        loss.backward();
        optimizer.step();
        runningLoss += loss.item<float>();
        runningCount++;
    }

    if ((step + 1) % logEvery == 0 || step + 1 == totalSteps)
    {
        double elapsed = clock.Elapsed.TotalSeconds;
        Console.WriteLine($"step {step + 1,5}/{totalSteps}  loss {runningLoss / runningCount:F4}  lr {lr * factor:E2}  " +
                          $"{elapsed:F0} s ({1000 * elapsed / (step + 1):F0} ms/step, {(step + 1) * batch / elapsed:F0} scenes/s)");
        runningLoss = 0;
        runningCount = 0;
    }
}
double trainSeconds = clock.Elapsed.TotalSeconds;
Console.WriteLine($"Training took {trainSeconds:F0} s.");
if (bench > 0) return 0;

model.eval();
var (test, testSource) = SceneData.LoadTest(mnistDir, null);
var testScenesList = ClutteredMnistGenerator.ForTest(test).Generate(testScenes, SceneData.TestSceneSeed);
var scores = SceneData.Scores(model, testScenesList);
var labels = testScenesList.Select(s => s.MultiHot).ToList();
var (map, perClass) = AveragePrecision.Mean(scores, labels);
double exact = AveragePrecision.ExactSetAccuracy(scores, labels);
Console.WriteLine($"Test ({testSource}, {testScenes} scenes, seed {SceneData.TestSceneSeed}): mAP {map:F4}; exact label set in top-k {exact:P1}");
Console.WriteLine("  AP per class: " + string.Join(" ", perClass.Select((a, c) => $"{c}:{a:F3}")));

var weightsPath = Path.GetFullPath(outPath);
Directory.CreateDirectory(Path.GetDirectoryName(weightsPath)!);
model.save_safetensors(weightsPath);
var cardPath = Path.ChangeExtension(weightsPath, ".json");
string command = "dotnet run -c Release --project tools/Ebp.Train -- --out " + Path.GetRelativePath(Environment.CurrentDirectory, weightsPath)
                 + (args.Contains("--steps") ? $" --steps {steps}" : "") + (args.Contains("--batch") ? $" --batch {batch}" : "")
                 + (args.Contains("--lr") ? $" --lr {lr.ToString(culture)}" : "") + (args.Contains("--seed") ? $" --seed {seed}" : "")
                 + (args.Contains("--scene-seed") ? $" --scene-seed {sceneSeed}" : "");
var card = new ModelCard
{
    Name = Path.GetFileNameWithoutExtension(weightsPath),
    Description = "VGG-style multi-label digit classifier for 80×80 cluttered-MNIST scenes (Ebp.Datasets.ClutteredMnistGenerator, default options), trained with TorchSharp.",
    Weights = Path.GetFileName(weightsPath),
    WeightsSha256 = ModelCard.Sha256(weightsPath),
    Model = spec,
    ClassNames = Enumerable.Range(0, 10).Select(c => c.ToString(culture)).ToList(),
    Input = new ModelCard.InputSpec { Channels = 1, Height = 80, Width = 80 },
    Preprocessing = "x = pixel / 255 (grey, one channel, values in [0, 1]; no mean/std normalisation)",
    Output = "logits [B, 10]; multi-label: sigmoid(logit) per class is the probability that the digit is present",
    Saliency = new ModelCard.SaliencySpec
    {
        SaliencyLayer = "features.13",
        ContrastLayer = "classifier.4",
        ClassifierLayer = "classifier.6",
        Note = "features.13 is the second max-pool (20×20), the pool before the last conv block, as pool4 of VGG16 in the paper; " +
               "classifier.4 is the ReLU after the second hidden linear layer (the analogue of VGG16's fc7), the input of the classifier classifier.6.",
    },
    Training = new JsonObject
    {
        ["command"] = command,
        ["torch_seed"] = seed,
        ["scene_seed"] = sceneSeed,
        ["data"] = "MNIST train split, scenes generated on the fly; step s uses scenes s·batch .. s·batch+batch-1 (none repeated)",
        ["steps"] = steps,
        ["batch_size"] = batch,
        ["scenes_seen"] = (long)steps * batch,
        ["loss"] = "BCEWithLogits (one sigmoid per class)",
        ["optimizer"] = $"Adam, lr {lr.ToString(culture)}, linear warm-up over {warmup} steps, cosine decay to 0",
        ["init"] = "convolutions and batch norm as torchvision (Kaiming-normal fan-out, BN weight 1 bias 0); linear layers PyTorch default U(±1/√fan_in)",
        ["torch_threads"] = threads,
        ["seconds"] = Math.Round(trainSeconds),
        ["machine"] = SceneData.Machine(),
        ["parameters"] = parameterCount,
    },
    Evaluation = new JsonObject
    {
        ["test_data"] = testSource.StartsWith("full", StringComparison.Ordinal) ? "MNIST t10k (all 10,000 digits)" : testSource,
        ["test_scenes"] = testScenes,
        ["test_scene_seed"] = SceneData.TestSceneSeed,
        ["mAP"] = Math.Round(map, 4),
        ["exact_set_accuracy"] = Math.Round(exact, 4),
        ["ap_per_class"] = new JsonArray(perClass.Select(a => (JsonNode)JsonValue.Create(Math.Round(a, 4))!).ToArray()),
    },
};
card.Save(cardPath);
Console.WriteLine($"Wrote {weightsPath} ({new FileInfo(weightsPath).Length / 1024.0:F0} KiB) and {cardPath}.");
return 0;
