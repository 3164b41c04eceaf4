namespace Ebp.Models;

/// <summary>
/// Architecture of a torchvision-style VGG network (see <see cref="Vgg"/>).
/// </summary>
/// <param name="Cfg">
/// The feature configuration, walked in order: an <see cref="int"/> <c>v</c> adds
/// <c>Conv2d(c, v, 3×3, padding 1)</c>, then <c>BatchNorm2d(v)</c> if <paramref name="BatchNorm"/>, then <c>ReLU</c>;
/// the string <c>"M"</c> adds <c>MaxPool2d(2×2, stride 2)</c>. Must contain at least one integer.
/// </param>
/// <param name="BatchNorm">Whether every convolution is followed by a <c>BatchNorm2d</c>.</param>
/// <param name="InChannels">Number of input channels.</param>
/// <param name="Hidden">Width of the two hidden fully connected layers (<c>classifier.0</c> and <c>classifier.3</c>).</param>
/// <param name="NumClasses">Number of output classes (<c>classifier.6</c>).</param>
/// <param name="PoolHeight">Output height of the adaptive average pool (<c>avgpool</c>).</param>
/// <param name="PoolWidth">Output width of the adaptive average pool (<c>avgpool</c>).</param>
/// <param name="Dropout">Dropout probability of <c>classifier.2</c> and <c>classifier.5</c> (training mode only).</param>
/// <remarks>
/// Record equality compares <paramref name="Cfg"/> by reference, not element by element.
/// </remarks>
public sealed record VggConfig(
    IReadOnlyList<object> Cfg,
    bool BatchNorm,
    int InChannels = 3,
    int Hidden = 4096,
    int NumClasses = 1000,
    int PoolHeight = 7,
    int PoolWidth = 7,
    double Dropout = 0.5)
{
    /// <summary>The max-pool marker used in <see cref="Cfg"/>.</summary>
    public const string MaxPool = "M";

    private static readonly object[] CfgA = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"];
    private static readonly object[] CfgB = [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"];
    private static readonly object[] CfgD = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"];
    private static readonly object[] CfgE = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"];

    /// <summary>VGG-11 (torchvision configuration "A").</summary>
    /// <param name="batchNorm">Add BatchNorm after every convolution (torchvision's <c>vgg11_bn</c>).</param>
    /// <param name="numClasses">Number of output classes.</param>
    public static VggConfig Vgg11(bool batchNorm = false, int numClasses = 1000) => new(CfgA, batchNorm, NumClasses: numClasses);

    /// <summary>VGG-13 (torchvision configuration "B").</summary>
    /// <param name="batchNorm">Add BatchNorm after every convolution (torchvision's <c>vgg13_bn</c>).</param>
    /// <param name="numClasses">Number of output classes.</param>
    public static VggConfig Vgg13(bool batchNorm = false, int numClasses = 1000) => new(CfgB, batchNorm, NumClasses: numClasses);

    /// <summary>VGG-16 (torchvision configuration "D").</summary>
    /// <param name="batchNorm">Add BatchNorm after every convolution (torchvision's <c>vgg16_bn</c>).</param>
    /// <param name="numClasses">Number of output classes.</param>
    public static VggConfig Vgg16(bool batchNorm = false, int numClasses = 1000) => new(CfgD, batchNorm, NumClasses: numClasses);

    /// <summary>VGG-19 (torchvision configuration "E").</summary>
    /// <param name="batchNorm">Add BatchNorm after every convolution (torchvision's <c>vgg19_bn</c>).</param>
    /// <param name="numClasses">Number of output classes.</param>
    public static VggConfig Vgg19(bool batchNorm = false, int numClasses = 1000) => new(CfgE, batchNorm, NumClasses: numClasses);

    /// <summary>
    /// Checks the configuration and throws <see cref="ArgumentException"/> naming the first invalid value.
    /// </summary>
    public void Validate()
    {
        if (Cfg is null || Cfg.Count == 0)
            throw new ArgumentException("VggConfig.Cfg must not be empty.", nameof(Cfg));
        bool anyConv = false;
        for (int i = 0; i < Cfg.Count; i++)
        {
            switch (Cfg[i])
            {
                case int v when v > 0: anyConv = true; break;
                case long v when v > 0 && v <= int.MaxValue: anyConv = true; break;
                case string s when s == MaxPool: break;
                default:
                    throw new ArgumentException(
                        $"VggConfig.Cfg[{i}] = {Cfg[i] ?? "null"} is invalid: expected a positive channel count or \"{MaxPool}\".", nameof(Cfg));
            }
        }
        if (!anyConv)
            throw new ArgumentException("VggConfig.Cfg must contain at least one convolution (a positive integer).", nameof(Cfg));
        if (InChannels <= 0) throw new ArgumentException($"VggConfig.InChannels must be positive (got {InChannels}).", nameof(InChannels));
        if (Hidden <= 0) throw new ArgumentException($"VggConfig.Hidden must be positive (got {Hidden}).", nameof(Hidden));
        if (NumClasses <= 0) throw new ArgumentException($"VggConfig.NumClasses must be positive (got {NumClasses}).", nameof(NumClasses));
        if (PoolHeight <= 0 || PoolWidth <= 0)
            throw new ArgumentException($"VggConfig pool size must be positive (got {PoolHeight}x{PoolWidth}).", nameof(PoolHeight));
        if (!(Dropout >= 0 && Dropout <= 1))
            throw new ArgumentException($"VggConfig.Dropout must be in [0, 1] (got {Dropout}).", nameof(Dropout));
    }
}
