using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Runtime.InteropServices;
using Defaults = Ebp.MLNet.SaliencyEstimator.Defaults;

namespace Ebp.Audit;

/// <summary>The <c>ebp-audit</c> command line: a thin layer over <see cref="AuditJob"/> and <see cref="Merger"/>.</summary>
internal static class Program
{
    /// <summary>Exit codes.</summary>
    public const int Ok = 0, Failed = 1, Usage = 2, Interrupted = 130, Terminated = 143;

    public static int Main(string[] args)
    {
        // Before libtorch loads: OpenMP reads its wait policy once (spinning idle threads made the default 8x slower on a busy host).
        Ebp.Threading.TorchThreads.PreferPassiveWaiting();
        return Run(args, Console.Out, Console.Error, Environment.GetEnvironmentVariable, handleSignals: true);
    }

    /// <summary>Runs the command line with the given console and environment (for embedding and tests).</summary>
    /// <param name="args">The arguments.</param>
    /// <param name="stdout">Output (progress, result line).</param>
    /// <param name="stderr">Errors.</param>
    /// <param name="environment">Environment lookup (JOB_COMPLETION_INDEX, …).</param>
    /// <param name="handleSignals">Turn SIGINT/SIGTERM into a clean stop after the current batch.</param>
    /// <param name="cancellationToken">Another way to stop after the current batch.</param>
    /// <param name="observer">Also called with every progress report of a run, on the job's thread.</param>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, Func<string, string?> environment, bool handleSignals = false,
                          CancellationToken cancellationToken = default, Action<AuditProgress>? observer = null)
    {
        var cli = new Cli(stdout, stderr, environment) { Observer = observer };
        var root = cli.BuildRoot();
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0 && parse.Action is not System.CommandLine.Help.HelpAction)
        {
            foreach (var e in parse.Errors) stderr.WriteLine($"error: {e.Message}");
            stderr.WriteLine("Run 'ebp-audit --help' for usage.");
            return Usage;
        }
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var registrations = new List<PosixSignalRegistration>();
        if (handleSignals)
        {
            foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
            {
                registrations.Add(PosixSignalRegistration.Create(signal, ctx =>
                {
                    if (cts.IsCancellationRequested && ctx.Signal == PosixSignal.SIGINT)
                    {
                        stderr.WriteLine("Second interrupt: aborting now (the journal keeps every finished batch; rerun to resume).");
                        return; // default handling terminates the process
                    }
                    ctx.Cancel = true;
                    cli.Signal ??= ctx.Signal;
                    stderr.WriteLine($"{ctx.Signal}: stopping after the current batch and writing the report (press Ctrl-C again to abort)…");
                    cts.Cancel();
                }));
            }
        }
        try
        {
            cli.Token = cts.Token;
            return parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false });
        }
        catch (AuditUsageException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return Usage;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            stderr.WriteLine($"error: {e.Message}");
            stderr.WriteLine(e.ToString());
            return Failed;
        }
        finally
        {
            foreach (var r in registrations) r.Dispose();
        }
    }

    private sealed class Cli(TextWriter stdout, TextWriter stderr, Func<string, string?> environment)
    {
        public CancellationToken Token { get; set; }
        public PosixSignal? Signal { get; set; }
        public Action<AuditProgress>? Observer { get; init; }

        private readonly Option<string?> _input = new("--input", "-i") { Description = "Folder of images (searched recursively; .png .jpg .jpeg .bmp .gif .webp)." };
        private readonly Option<string?> _manifest = new("--manifest", "-m") { Description = "CSV manifest with header: path[,label][,annotation] (paths relative to the manifest)." };
        private readonly Option<string?> _annotations = new("--annotations") { Description = "Folder of VOC XML files for --input (default: an .xml next to each image)." };
        private readonly Option<bool> _labelFromFolder = new("--label-from-folder") { Description = "--input: the image's parent folder name is its label." };
        private readonly Option<string> _out = new("--out", "-o") { Description = "Output folder (with sharding: <out>/shard-i-of-N).", Required = true };
        private readonly Option<string> _model = new("--model") { Description = "default | model card .json | model spec .json (+ --weights) | ONNX classifier .onnx | architecture (vgg16, resnet50, …; + --weights).", DefaultValueFactory = _ => "default" };
        private readonly Option<string?> _weights = new("--weights") { Description = "Weight file (safetensors, .pth state_dict, TorchSharp)." };
        private readonly Option<int?> _numClasses = new("--num-classes") { Description = "Classes of an architecture model (default: from --class-names, else 1000)." };
        private readonly Option<string?> _classNames = new("--class-names") { Description = "Text file, one class name per line." };
        private readonly Option<string?> _inputSize = new("--input-size") { Description = "Model input WxH (default: the card's, else 224x224)." };
        private readonly Option<string?> _mean = new("--mean") { Description = "Per-channel mean after scaling to [0,1], comma-separated (default 0)." };
        private readonly Option<string?> _std = new("--std") { Description = "Per-channel std, comma-separated (default 1)." };
        private readonly Option<string[]> _methods = new("--method", "--methods") { Description = "ebp, cebp, gradient (comma-separated or repeated).", DefaultValueFactory = _ => ["ebp"], AllowMultipleArgumentsPerToken = true };
        private readonly Option<string?> _layer = new("--layer") { Description = "Saliency layer of ebp and cebp (module name; default: the card's, else the input)." };
        private readonly Option<string?> _gradientLayer = new("--gradient-layer") { Description = "gradient: saliency layer (default: the input, as TorchRay)." };
        private readonly Option<string?> _contrastLayer = new("--contrast-layer") { Description = "cebp: contrast layer (default: the card's)." };
        private readonly Option<string?> _classifierLayer = new("--classifier-layer") { Description = "cebp: classifier layer (default: the card's, else the last conv/linear)." };
        private readonly Option<int> _batch = new("--batch-size", "-b") { Description = "Images per batch: decoded, checkpointed and cancellable together.", DefaultValueFactory = _ => Defaults.BatchSize };
        private readonly Option<int> _computeBatch = new("--compute-batch") { Description = "Rows per forward/backward pass; 1 (default) makes every number independent of batching, so resumed and sharded runs reproduce a single run exactly; larger is faster for small models.", DefaultValueFactory = _ => 1 };
        private readonly Option<int> _topK = new("--top-k", "-k") { Description = "Top predicted classes to explain per image (label and annotated classes are added).", DefaultValueFactory = _ => Defaults.TopK };
        private readonly Option<string?> _minEnergy = new("--min-energy") { Description = MinEnergyHelp };

        /// <summary>The help of every --min-energy option.</summary>
        internal const string MinEnergyHelp = "Flag low_energy below this share of the map inside the class's boxes: one number for every method, or method=value pairs (ebp=0.1,cebp=0.5). Default per method, calibrated on the default model's scenes: ebp 0.12, cebp 0.52, gradient 0.09.";
        private readonly Option<double?> _tolerance = new("--tolerance") { Description = "Pointing tolerance in image pixels (default: 15 px at 224, scaled to the image's longer side)." };
        private readonly Option<float> _alpha = new("--overlay-alpha") { Description = "Heat map opacity in overlays.", DefaultValueFactory = _ => Defaults.OverlayAlpha };
        private readonly Option<bool> _noOverlays = new("--no-overlays") { Description = "Do not write overlay PNGs." };
        private readonly Option<string?> _shard = new("--shard") { Description = "Process shard i of N (i/N). Default: $JOB_COMPLETION_INDEX with N from --shards, $EBP_AUDIT_SHARDS or $JOB_COMPLETION_COUNT." };
        private readonly Option<int?> _shards = new("--shards") { Description = "Number of shards N (with $JOB_COMPLETION_INDEX)." };
        private readonly Option<bool> _restart = new("--restart") { Description = "Discard earlier results in the output folder instead of resuming." };
        private readonly Option<string> _device = new("--device") { Description = "TorchSharp device.", DefaultValueFactory = _ => Defaults.Device };
        private readonly Option<int?> _threads = new("--threads") { Description = "Torch intra-op threads (default: the CPUs this process may use: affinity and cgroup CPU quota)." };
        private readonly Option<bool> _faithfulness = new("--faithfulness") { Description = "Also measure each map's deletion and insertion curves (RISE): columns deletion_auc, insertion_auc and a summary table; 2(k+1) extra forward passes per row." };
        private readonly Option<int> _faithfulnessSteps = new("--faithfulness-steps") { Description = "Steps k of the deletion and insertion curves.", DefaultValueFactory = _ => 16 };
        private readonly Option<string> _faithfulnessScore = new("--faithfulness-score") { Description = "softmax (RISE) | sigmoid (multi-label models such as the default one).", DefaultValueFactory = _ => "softmax" };
        private readonly Option<string> _progress = new("--progress") { Description = "auto | bar | lines | none (auto: a live bar on a terminal, plain lines in logs).", DefaultValueFactory = _ => "auto" };

        public RootCommand BuildRoot()
        {
            var root = new RootCommand(
                "ebp-audit: explain a folder or manifest of images with Excitation Backprop (and c-EBP, gradient); write overlays, " +
                "results.csv/.jsonl, summary.json/.md and an HTML gallery. Reruns resume; --shard splits the work; 'merge' combines shards.");
            foreach (var o in new Option[] { _input, _manifest, _annotations, _labelFromFolder, _out, _model, _weights, _numClasses, _classNames,
                                             _inputSize, _mean, _std, _methods, _layer, _gradientLayer, _contrastLayer, _classifierLayer, _batch, _computeBatch, _topK, _minEnergy,
                                             _tolerance, _alpha, _noOverlays, _shard, _shards, _restart, _device, _threads, _progress,
                                             _faithfulness, _faithfulnessSteps, _faithfulnessScore })
                root.Options.Add(o);
            root.SetAction(parse => RunJob(parse));

            var sources = new Argument<string[]>("shards") { Description = "Shard folders, or the folder holding shard-i-of-N folders.", Arity = ArgumentArity.OneOrMore };
            var mergeOut = new Option<string>("--out", "-o") { Description = "Merged output folder.", Required = true };
            var mergeMin = new Option<string?>("--min-energy") { Description = MinEnergyHelp };
            var allowIncomplete = new Option<bool>("--allow-incomplete") { Description = "Merge even when shards are missing or unfinished." };
            var merge = new Command("merge", "Combine the output folders of the shards of one job into the report a single process would write.");
            merge.Arguments.Add(sources);
            merge.Options.Add(mergeOut);
            merge.Options.Add(mergeMin);
            merge.Options.Add(allowIncomplete);
            merge.SetAction(parse =>
            {
                var result = Merger.Merge(new MergeOptions
                {
                    Sources = parse.GetValue(sources)!,
                    OutputFolder = parse.GetValue(mergeOut)!,
                    MinEnergy = Thresholds(parse.GetValue(mergeMin)),
                    AllowIncomplete = parse.GetValue(allowIncomplete),
                }, new Progress<string>(stdout.WriteLine));
                stdout.WriteLine($"merged into {result.OutputFolder}: {Merger.Describe(result)}");
                return result.Status == AuditStatus.Complete ? Ok : Failed;
            });
            root.Subcommands.Add(merge);

            var folder = new Argument<string>("folder") { Description = "An ebp-audit output folder." };
            var reportMin = new Option<string?>("--min-energy") { Description = MinEnergyHelp };
            var report = new Command("report", "Rewrite the reports of an output folder from its journal (no model needed), e.g. with another --min-energy.");
            report.Arguments.Add(folder);
            report.Options.Add(reportMin);
            report.SetAction(parse =>
            {
                var result = Merger.Report(parse.GetValue(folder)!, Thresholds(parse.GetValue(reportMin)));
                stdout.WriteLine($"{result.OutputFolder}: {Merger.Describe(result)}");
                return Ok;
            });
            root.Subcommands.Add(report);
            return root;
        }

        /// <summary>The job's options from a parse result.</summary>
        public AuditOptions Options(ParseResult p) => new()
        {
            InputFolder = p.GetValue(_input),
            ManifestPath = p.GetValue(_manifest),
            AnnotationFolder = p.GetValue(_annotations),
            LabelFromFolder = p.GetValue(_labelFromFolder),
            OutputFolder = p.GetValue(_out)!,
            Model = p.GetValue(_model)!,
            WeightsPath = p.GetValue(_weights),
            NumClasses = p.GetValue(_numClasses),
            ClassNamesPath = p.GetValue(_classNames),
            InputSize = p.GetValue(_inputSize) is { } size ? ParseSize(size) : null,
            Mean = p.GetValue(_mean) is { } mean ? ParseFloats(mean, "--mean") : null,
            Std = p.GetValue(_std) is { } std ? ParseFloats(std, "--std") : null,
            Methods = AuditMethods.ParseList(p.GetValue(_methods)!),
            SaliencyLayer = p.GetValue(_layer),
            GradientLayer = p.GetValue(_gradientLayer),
            ContrastLayer = p.GetValue(_contrastLayer),
            ClassifierLayer = p.GetValue(_classifierLayer),
            BatchSize = p.GetValue(_batch),
            ComputeBatch = p.GetValue(_computeBatch),
            TopK = p.GetValue(_topK),
            MinEnergy = Thresholds(p.GetValue(_minEnergy)),
            TolerancePx = p.GetValue(_tolerance),
            OverlayAlpha = p.GetValue(_alpha),
            WriteOverlays = !p.GetValue(_noOverlays),
            Shard = ShardSpec.Resolve(p.GetValue(_shard), p.GetValue(_shards), environment),
            Restart = p.GetValue(_restart),
            Device = p.GetValue(_device)!,
            Threads = p.GetValue(_threads),
            Faithfulness = p.GetValue(_faithfulness),
            FaithfulnessSteps = p.GetValue(_faithfulnessSteps),
            FaithfulnessScore = FaithfulnessScores.Parse(p.GetValue(_faithfulnessScore)!),
        };

        private int RunJob(ParseResult p)
        {
            var options = Options(p);
            options.Validate();
            var style = p.GetValue(_progress)!.ToLowerInvariant() switch
            {
                "auto" => ProgressStyle.Auto,
                "bar" => ProgressStyle.Bar,
                "lines" => ProgressStyle.Lines,
                "none" => ProgressStyle.None,
                var s => throw new AuditUsageException($"--progress must be auto, bar, lines or none (got '{s}')."),
            };
            bool console = ReferenceEquals(stdout, Console.Out);
            if (options.Shard.IsSharded) stdout.WriteLine($"shard {options.Shard}: writing to {options.EffectiveOutputFolder}");
            AuditResult result;
            if (console && (style == ProgressStyle.Bar || (style == ProgressStyle.Auto && !Console.IsOutputRedirected)))
            {
                result = LiveProgress.Run(new AuditJob(options), Observer, Token);
            }
            else
            {
                var progress = new ConsoleProgress(style == ProgressStyle.Bar ? ProgressStyle.Lines : style, console ? null : stdout);
                IProgress<AuditProgress> report = Observer is { } observer ? new Tee(progress, observer) : progress;
                result = new AuditJob(options).Run(report, Token);
            }
            stdout.WriteLine($"{result.OutputFolder}: {Merger.Describe(result)}");
            if (result.Status == AuditStatus.Cancelled)
            {
                stderr.WriteLine($"Cancelled with {result.Pending} images pending; the report covers the finished ones. Rerun the same command to resume.");
                return Signal == PosixSignal.SIGTERM ? Terminated : Interrupted;
            }
            return Ok;
        }

        private static EnergyThresholds Thresholds(string? text) => text is null ? EnergyThresholds.Default : EnergyThresholds.Parse(text);

        private static (int, int) ParseSize(string text)
        {
            var parts = text.ToLowerInvariant().Split('x');
            if (parts.Length == 1 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int s)) return (s, s);
            if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int w)
                && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int h)) return (w, h);
            throw new AuditUsageException($"--input-size expects WxH (e.g. 224x224), got '{text}'.");
        }

        private static float[] ParseFloats(string text, string option)
        {
            var parts = text.Split(',', StringSplitOptions.TrimEntries);
            var values = new float[parts.Length];
            for (int i = 0; i < parts.Length; i++)
                if (!float.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) || !float.IsFinite(values[i]))
                    throw new AuditUsageException($"{option} expects comma-separated numbers, got '{text}'.");
            return values;
        }
    }

    private sealed class Tee(IProgress<AuditProgress> first, Action<AuditProgress> second) : IProgress<AuditProgress>
    {
        public void Report(AuditProgress value)
        {
            first.Report(value);
            second(value);
        }
    }

    /// <summary>Parses a run command line into options without running it (for tests and tooling).</summary>
    public static AuditOptions ParseRunOptions(string[] args, Func<string, string?> environment)
    {
        var cli = new Cli(TextWriter.Null, TextWriter.Null, environment);
        var root = cli.BuildRoot();
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0) throw new AuditUsageException(string.Join("; ", parse.Errors.Select(e => e.Message)));
        return cli.Options(parse);
    }
}
