using System.Globalization;

namespace Ebp.Audit;

/// <summary>A saliency method of the audit, with its command-line name.</summary>
internal enum AuditMethod
{
    /// <summary>Excitation Backprop (<c>ebp</c>).</summary>
    Ebp,

    /// <summary>Contrastive Excitation Backprop (<c>cebp</c>); needs a contrast layer.</summary>
    Cebp,

    /// <summary>Plain gradient (<c>gradient</c>), TorchRay's <c>gradient_sum</c>.</summary>
    Gradient,
}

/// <summary>Names and engine counterparts of <see cref="AuditMethod"/>.</summary>
internal static class AuditMethods
{
    /// <summary>The command-line / report name: <c>ebp</c>, <c>cebp</c>, <c>gradient</c>.</summary>
    public static string Name(this AuditMethod m) => m switch
    {
        AuditMethod.Ebp => "ebp",
        AuditMethod.Cebp => "cebp",
        AuditMethod.Gradient => "gradient",
        _ => throw new ArgumentOutOfRangeException(nameof(m)),
    };

    /// <summary>The engine's method.</summary>
    public static SaliencyMethod ToSaliencyMethod(this AuditMethod m) => m switch
    {
        AuditMethod.Ebp => SaliencyMethod.ExcitationBackprop,
        AuditMethod.Cebp => SaliencyMethod.ContrastiveExcitationBackprop,
        AuditMethod.Gradient => SaliencyMethod.Gradient,
        _ => throw new ArgumentOutOfRangeException(nameof(m)),
    };

    /// <summary>Parses <c>ebp</c>, <c>cebp</c> (or <c>c-ebp</c>, <c>contrastive</c>), <c>gradient</c> (or <c>grad</c>).</summary>
    /// <exception cref="AuditUsageException">Unknown name.</exception>
    public static AuditMethod Parse(string text) => text.Trim().ToLowerInvariant() switch
    {
        "ebp" or "excitation" or "excitationbackprop" => AuditMethod.Ebp,
        "cebp" or "c-ebp" or "contrastive" or "contrastiveexcitationbackprop" => AuditMethod.Cebp,
        "gradient" or "grad" => AuditMethod.Gradient,
        _ => throw new AuditUsageException($"Unknown method '{text}'. Methods: ebp, cebp, gradient."),
    };

    /// <summary>Parses a list such as <c>ebp,cebp</c> (also several arguments); duplicates are removed, order kept.</summary>
    public static IReadOnlyList<AuditMethod> ParseList(IEnumerable<string> values)
    {
        var list = new List<AuditMethod>();
        foreach (var v in values)
            foreach (var part in v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var m = Parse(part);
                if (!list.Contains(m)) list.Add(m);
            }
        if (list.Count == 0) throw new AuditUsageException("Give at least one method (ebp, cebp, gradient).");
        return list;
    }
}

/// <summary>A user error in the options or inputs (the command line prints the message and exits with code 2).</summary>
internal sealed class AuditUsageException(string message) : Exception(message);

/// <summary>
/// Which part of the input a process takes: images whose shard (a stable hash of the relative path, mod
/// <see cref="Count"/>) equals <see cref="Index"/>. <see cref="None"/> (0 of 1) takes everything.
/// </summary>
internal readonly record struct ShardSpec(int Index, int Count)
{
    /// <summary>The environment variable Kubernetes Indexed Jobs set to the pod's completion index.</summary>
    public const string IndexVariable = "JOB_COMPLETION_INDEX";

    /// <summary>
    /// Environment variables read (in this order) for the shard count when the index comes from
    /// <see cref="IndexVariable"/>: Kubernetes does not export <c>.spec.completions</c>, so the pod template sets one of them.
    /// </summary>
    public static readonly string[] CountVariables = ["EBP_AUDIT_SHARDS", "JOB_COMPLETION_COUNT"];

    /// <summary>No sharding.</summary>
    public static ShardSpec None => new(0, 1);

    /// <summary>Whether the input is split (more than one shard).</summary>
    public bool IsSharded => Count > 1;

    /// <summary>The folder name of this shard's output inside the output folder: <c>shard-i-of-N</c>.</summary>
    public string FolderName => $"shard-{Index}-of-{Count}";

    public override string ToString() => $"{Index}/{Count}";

    /// <summary>Parses <c>i/N</c> (0 ≤ i &lt; N).</summary>
    public static ShardSpec Parse(string text)
    {
        var parts = text.Split('/');
        if (parts.Length != 2
            || !int.TryParse(parts[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int i)
            || !int.TryParse(parts[1].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int n))
            throw new AuditUsageException($"--shard expects i/N with 0 <= i < N (e.g. 2/8), got '{text}'.");
        return Create(i, n, "--shard");
    }

    /// <summary>
    /// The shard of this process: <paramref name="shard"/> (<c>i/N</c>) if given; else, when <see cref="IndexVariable"/>
    /// is set, that index with N from <paramref name="shards"/> or the first of <see cref="CountVariables"/>; else
    /// <see cref="None"/>.
    /// </summary>
    /// <exception cref="AuditUsageException">Inconsistent or malformed values (the message names their source).</exception>
    public static ShardSpec Resolve(string? shard, int? shards, Func<string, string?> environment)
    {
        if (!string.IsNullOrWhiteSpace(shard))
        {
            var s = Parse(shard);
            if (shards is { } n && n != s.Count)
                throw new AuditUsageException($"--shard {shard} and --shards {n} disagree on the number of shards.");
            return s;
        }
        var indexText = environment(IndexVariable);
        if (string.IsNullOrWhiteSpace(indexText))
        {
            if (shards is > 1)
                throw new AuditUsageException($"--shards {shards} needs the shard index: --shard i/{shards} or the environment variable {IndexVariable}.");
            return None;
        }
        if (!int.TryParse(indexText.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int index))
            throw new AuditUsageException($"{IndexVariable}='{indexText}' is not a non-negative integer.");
        int? count = shards;
        string source = "--shards";
        if (count is null)
        {
            foreach (var name in CountVariables)
            {
                var v = environment(name);
                if (string.IsNullOrWhiteSpace(v)) continue;
                if (!int.TryParse(v.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int c))
                    throw new AuditUsageException($"{name}='{v}' is not a positive integer.");
                count = c;
                source = name;
                break;
            }
        }
        if (count is null)
            throw new AuditUsageException(
                $"{IndexVariable}={index} is set (a Kubernetes Indexed Job) but the number of shards is unknown: pass --shards N " +
                $"or set {string.Join(" or ", CountVariables)} to the Job's completions (or pass --shard 0/1 to process everything).");
        return Create(index, count.Value, $"{IndexVariable} with {source}");
    }

    private static ShardSpec Create(int index, int count, string source)
    {
        if (count < 1) throw new AuditUsageException($"{source}: the number of shards must be at least 1 (got {count}).");
        if (index < 0 || index >= count) throw new AuditUsageException($"{source}: shard index {index} is outside 0..{count - 1}.");
        return new ShardSpec(index, count);
    }

    /// <summary>The shard (0..count−1) of an image: FNV-1a (64 bit) of its UTF-8 relative path, mod <paramref name="count"/>.</summary>
    public static int Of(string key, int count)
    {
        ulong h = 14695981039346656037UL;
        foreach (byte b in System.Text.Encoding.UTF8.GetBytes(key))
        {
            h ^= b;
            h *= 1099511628211UL;
        }
        return (int)(h % (ulong)count);
    }

    /// <summary>Whether this shard takes the image <paramref name="key"/>.</summary>
    public bool Takes(string key) => Count == 1 || Of(key, Count) == Index;
}

/// <summary>How progress is shown on the console.</summary>
internal enum ProgressStyle
{
    /// <summary>A bar when stdout is a terminal, plain lines otherwise.</summary>
    Auto,
    Bar,
    Lines,
    None,
}

/// <summary>The settings of one audit run (<see cref="AuditJob"/>). Every default is the command line's default.</summary>
internal sealed record AuditOptions
{
    /// <summary>A folder of images (searched recursively). Exactly one of this and <see cref="ManifestPath"/>.</summary>
    public string? InputFolder { get; init; }

    /// <summary>A CSV manifest with a header: <c>path</c> (required), <c>label</c>, <c>annotation</c> (optional).</summary>
    public string? ManifestPath { get; init; }

    /// <summary>
    /// Folder of VOC XML files for <see cref="InputFolder"/> images: <c>&lt;folder&gt;/&lt;relative path without extension&gt;.xml</c>.
    /// Default null: an XML file next to the image with the same name (<c>a/b.png</c> → <c>a/b.xml</c>), if present.
    /// </summary>
    public string? AnnotationFolder { get; init; }

    /// <summary>Folder input: the name of the image's parent folder is its label (ImageNet-style layout). Default false.</summary>
    public bool LabelFromFolder { get; init; }

    /// <summary>The output folder (created). With sharding, the shard writes to <c>&lt;out&gt;/shard-i-of-N</c>.</summary>
    public string OutputFolder { get; init; } = "";

    /// <summary>
    /// The model: <c>default</c> (the embedded cluttered-MNIST model), a model-card JSON (architecture spec, weights
    /// file, class names, input size, layers), a bare model-spec JSON (<c>"kind": …</c>, needs <see cref="WeightsPath"/>),
    /// or a <see cref="Models.ModelZoo"/> architecture name (needs <see cref="WeightsPath"/>).
    /// </summary>
    public string Model { get; init; } = "default";

    /// <summary>Weight file for a spec or zoo model; overrides a card's weights. Default null.</summary>
    public string? WeightsPath { get; init; }

    /// <summary>Classes of a zoo architecture. Default null: the class-names file's count, else 1000.</summary>
    public int? NumClasses { get; init; }

    /// <summary>A text file with one class name per line (overrides a card's names). Default null: card names or indices.</summary>
    public string? ClassNamesPath { get; init; }

    /// <summary>Model input size (width, height). Default null: the card's, else 224×224.</summary>
    public (int Width, int Height)? InputSize { get; init; }

    /// <summary>Per-channel mean and standard deviation after scaling pixels to [0, 1]. Default null: 0 and 1.</summary>
    public float[]? Mean { get; init; }

    /// <inheritdoc cref="Mean"/>
    public float[]? Std { get; init; }

    /// <summary>The methods, in report order. Default ebp.</summary>
    public IReadOnlyList<AuditMethod> Methods { get; init; } = [AuditMethod.Ebp];

    /// <summary>Saliency layer (module whose output receives the map). Default null: the card's, else the input ("").</summary>
    public string? SaliencyLayer { get; init; }

    /// <summary>
    /// Saliency layer of the gradient method. Default null: the input (""), as TorchRay's <c>gradient</c>: the gradient at
    /// an inner layer is a different, much coarser measure than the one the literature reports.
    /// </summary>
    public string? GradientLayer { get; init; }

    /// <summary>Contrast layer for cebp. Default null: the card's.</summary>
    public string? ContrastLayer { get; init; }

    /// <summary>Classifier layer for cebp. Default null: the card's, else the last conv/linear layer.</summary>
    public string? ClassifierLayer { get; init; }

    /// <summary>
    /// Images per batch: decoded together, recorded in the journal together (the checkpoint unit), and the granularity of
    /// cancellation. Default 8.
    /// </summary>
    public int BatchSize { get; init; } = Ebp.MLNet.SaliencyEstimator.Defaults.BatchSize;

    /// <summary>
    /// Rows per forward/backward pass inside the stage. Default 1: every (image, class) is computed on its own, so its
    /// numbers do not depend on which images share its batch, and a resumed, sharded or merged run reproduces a single
    /// run byte for byte (on the same machine type and thread count). Larger values are faster for small models, but
    /// matrix products over different batch compositions round differently in the last bits, which can show in the
    /// printed numbers, a tied peak, or an overlay pixel.
    /// </summary>
    public int ComputeBatch { get; init; } = 1;

    /// <summary>Top predicted classes explained per image (besides the label and annotated classes). Default 1.</summary>
    public int TopK { get; init; } = Ebp.MLNet.SaliencyEstimator.Defaults.TopK;

    /// <summary>
    /// Flag <c>low_energy</c> below this share of the map's positive mass inside the class's boxes, per method (a number
    /// converts to one threshold for every method). Default <see cref="EnergyThresholds.Default"/>, calibrated per method.
    /// </summary>
    public EnergyThresholds MinEnergy { get; init; } = EnergyThresholds.Default;

    /// <summary>Pointing-game tolerance in image pixels. Default null: 15 px at 224, scaled to the image's longer side.</summary>
    public double? TolerancePx { get; init; }

    /// <summary>Opacity of the heat map in the overlays. Default 0.5.</summary>
    public float OverlayAlpha { get; init; } = Ebp.MLNet.SaliencyEstimator.Defaults.OverlayAlpha;

    /// <summary>Write overlay PNGs. Default true.</summary>
    public bool WriteOverlays { get; init; } = true;

    /// <summary>
    /// Measure the deletion and insertion curves of every row (RISE; <see cref="FaithfulnessRows"/>): off by default, as
    /// each row then costs 2(k + 1) extra forward passes.
    /// </summary>
    public bool Faithfulness { get; init; }

    /// <summary>Steps k of the deletion and insertion curves. Default 16.</summary>
    public int FaithfulnessSteps { get; init; } = 16;

    /// <summary>The class score along the curves: softmax (RISE, default) or sigmoid (multi-label models).</summary>
    public Ebp.Evaluation.FaithfulnessScore FaithfulnessScore { get; init; } = Ebp.Evaluation.FaithfulnessScore.Softmax;

    /// <summary>The shard of this process. Default <see cref="ShardSpec.None"/>.</summary>
    public ShardSpec Shard { get; init; } = ShardSpec.None;

    /// <summary>Discard the journal of an earlier run in the output folder instead of resuming it. Default false.</summary>
    public bool Restart { get; init; }

    /// <summary>TorchSharp device. Default "cpu".</summary>
    public string Device { get; init; } = Ebp.MLNet.SaliencyEstimator.Defaults.Device;

    /// <summary>
    /// Torch intra-op threads. Default null: <see cref="Ebp.Threading.TorchThreads.RecommendedIntraOpThreads"/> (the CPUs
    /// the process may use, honouring the affinity mask and a container's cgroup CPU quota).
    /// </summary>
    public int? Threads { get; init; }

    /// <summary>The folder the job writes to: <see cref="OutputFolder"/>, or its <c>shard-i-of-N</c> subfolder.</summary>
    public string EffectiveOutputFolder =>
        Shard.IsSharded ? Path.Combine(OutputFolder, Shard.FolderName) : OutputFolder;

    /// <summary>
    /// Refuses an output folder that is the input folder or contains it (the job would skip every image as part of its own
    /// output). An output folder inside the input folder is fine: it is excluded from the inputs.
    /// </summary>
    private void CheckFolders()
    {
        if (InputFolder is null) return;
        static string Norm(string p) => Path.TrimEndingDirectorySeparator(Path.GetFullPath(p)) + Path.DirectorySeparatorChar;
        string input = Norm(InputFolder), output = Norm(OutputFolder);
        if (input == output)
            throw new AuditUsageException($"--out '{OutputFolder}' is the input folder: the reports and overlays would be written among the images. Give another --out folder (e.g. a sibling, or a subfolder such as {Path.Combine(InputFolder, "audit")}, which is then skipped as input).");
        if (input.StartsWith(output, StringComparison.Ordinal))
            throw new AuditUsageException($"--out '{OutputFolder}' contains the input folder '{InputFolder}': every image would count as part of the output. Give an --out folder outside the input folder (or inside it, which is then skipped as input).");
    }

    /// <summary>Checks the settings; the only file system access is resolving the input and output paths.</summary>
    /// <exception cref="AuditUsageException">The first problem found.</exception>
    public void Validate()
    {
        if ((InputFolder is null) == (ManifestPath is null))
            throw new AuditUsageException("Give exactly one input: --input <folder> or --manifest <file.csv>.");
        if (string.IsNullOrWhiteSpace(OutputFolder)) throw new AuditUsageException("Give the output folder: --out <folder>.");
        if (LabelFromFolder && InputFolder is null) throw new AuditUsageException("--label-from-folder applies to --input folders only.");
        if (AnnotationFolder is not null && InputFolder is null)
            throw new AuditUsageException("--annotations applies to --input folders; a manifest names annotation files in its 'annotation' column.");
        if (Methods is null || Methods.Count == 0) throw new AuditUsageException("Give at least one method (ebp, cebp, gradient).");
        if (Methods.Distinct().Count() != Methods.Count) throw new AuditUsageException("A method is listed twice.");
        if (BatchSize < 1) throw new AuditUsageException($"--batch-size must be at least 1 (got {BatchSize}).");
        if (ComputeBatch < 1) throw new AuditUsageException($"--compute-batch must be at least 1 (got {ComputeBatch}).");
        if (TopK < 1)
            throw new AuditUsageException($"--top-k must be at least 1 (got {TopK}): every image is explained for its top-k predicted classes (label and annotated classes are added).");
        (MinEnergy ?? throw new AuditUsageException("Give the --min-energy thresholds.")).Checked();
        if (TolerancePx is { } t && !(t >= 0 && double.IsFinite(t))) throw new AuditUsageException($"--tolerance must be >= 0 pixels (got {t}).");
        if (!(OverlayAlpha >= 0 && OverlayAlpha <= 1)) throw new AuditUsageException($"--overlay-alpha must be in [0, 1] (got {OverlayAlpha}).");
        if (NumClasses is < 1) throw new AuditUsageException($"--num-classes must be positive (got {NumClasses}).");
        if (InputSize is { } s && (s.Width < 1 || s.Height < 1)) throw new AuditUsageException($"--input-size must be positive (got {s.Width}x{s.Height}).");
        if (Threads is < 1) throw new AuditUsageException($"--threads must be positive (got {Threads}).");
        if (FaithfulnessSteps < 1) throw new AuditUsageException($"--faithfulness-steps must be at least 1 (got {FaithfulnessSteps}); 16 is the default.");
        CheckFolders();
        if (Shard.Count < 1 || Shard.Index < 0 || Shard.Index >= Shard.Count) throw new AuditUsageException($"Invalid shard {Shard}.");
    }
}
