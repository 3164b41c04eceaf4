namespace Ebp.Models;

/// <summary>The residual block type of a <see cref="ResNet"/>.</summary>
public enum ResNetBlock
{
    /// <summary>Two 3×3 convolutions, expansion 1 (<see cref="BasicBlock"/>; ResNet-18/34).</summary>
    Basic,

    /// <summary>1×1 → 3×3 → 1×1 convolutions, expansion 4 (<see cref="Bottleneck"/>; ResNet-50/101/152).</summary>
    Bottleneck,
}

/// <summary>
/// Architecture of a torchvision-style ResNet (see <see cref="ResNet"/>).
/// </summary>
/// <param name="Block">The residual block type.</param>
/// <param name="Layers">Number of blocks in each of the four stages <c>layer1</c>..<c>layer4</c>.</param>
/// <param name="Width">Base width <c>w</c>: the stem has <c>w</c> channels and the stages use planes w, 2w, 4w, 8w (64 in torchvision).</param>
/// <param name="NumClasses">Number of output classes (<c>fc</c>).</param>
/// <param name="InChannels">Number of input channels.</param>
/// <remarks>Record equality compares <paramref name="Layers"/> by reference, not element by element.</remarks>
public sealed record ResNetConfig(
    ResNetBlock Block,
    IReadOnlyList<int> Layers,
    int Width = 64,
    int NumClasses = 1000,
    int InChannels = 3)
{
    /// <summary>The channel expansion of the block type: 1 for <see cref="ResNetBlock.Basic"/>, 4 for <see cref="ResNetBlock.Bottleneck"/>.</summary>
    public int Expansion => Block == ResNetBlock.Bottleneck ? Models.Bottleneck.Expansion : BasicBlock.Expansion;

    /// <summary>ResNet-18: basic blocks, [2, 2, 2, 2].</summary>
    /// <param name="numClasses">Number of output classes.</param>
    public static ResNetConfig ResNet18(int numClasses = 1000) => new(ResNetBlock.Basic, [2, 2, 2, 2], NumClasses: numClasses);

    /// <summary>ResNet-34: basic blocks, [3, 4, 6, 3].</summary>
    /// <param name="numClasses">Number of output classes.</param>
    public static ResNetConfig ResNet34(int numClasses = 1000) => new(ResNetBlock.Basic, [3, 4, 6, 3], NumClasses: numClasses);

    /// <summary>ResNet-50: bottleneck blocks, [3, 4, 6, 3].</summary>
    /// <param name="numClasses">Number of output classes.</param>
    public static ResNetConfig ResNet50(int numClasses = 1000) => new(ResNetBlock.Bottleneck, [3, 4, 6, 3], NumClasses: numClasses);

    /// <summary>ResNet-101: bottleneck blocks, [3, 4, 23, 3].</summary>
    /// <param name="numClasses">Number of output classes.</param>
    public static ResNetConfig ResNet101(int numClasses = 1000) => new(ResNetBlock.Bottleneck, [3, 4, 23, 3], NumClasses: numClasses);

    /// <summary>ResNet-152: bottleneck blocks, [3, 8, 36, 3].</summary>
    /// <param name="numClasses">Number of output classes.</param>
    public static ResNetConfig ResNet152(int numClasses = 1000) => new(ResNetBlock.Bottleneck, [3, 8, 36, 3], NumClasses: numClasses);

    /// <summary>
    /// Checks the configuration and throws <see cref="ArgumentException"/> naming the first invalid value.
    /// </summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Block))
            throw new ArgumentException($"ResNetConfig.Block = {Block} is not a valid block type.", nameof(Block));
        if (Layers is null || Layers.Count != 4)
            throw new ArgumentException($"ResNetConfig.Layers must have exactly 4 entries (got {Layers?.Count.ToString() ?? "null"}).", nameof(Layers));
        for (int i = 0; i < 4; i++)
            if (Layers[i] <= 0)
                throw new ArgumentException($"ResNetConfig.Layers[{i}] must be positive (got {Layers[i]}).", nameof(Layers));
        if (Width <= 0) throw new ArgumentException($"ResNetConfig.Width must be positive (got {Width}).", nameof(Width));
        if (NumClasses <= 0) throw new ArgumentException($"ResNetConfig.NumClasses must be positive (got {NumClasses}).", nameof(NumClasses));
        if (InChannels <= 0) throw new ArgumentException($"ResNetConfig.InChannels must be positive (got {InChannels}).", nameof(InChannels));
    }
}
