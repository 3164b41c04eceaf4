namespace Ebp.Onnx;

/// <summary>Options of <see cref="OnnxModel.Load(string, OnnxLoadOptions?)"/>.</summary>
public sealed record OnnxLoadOptions
{
    /// <summary>
    /// The input shape to use where the file leaves dimensions open (other than the batch dimension), e.g.
    /// <c>[1, 3, 224, 224]</c>. Dimensions the file fixes must agree. Default: the file's shape.
    /// </summary>
    public IReadOnlyList<long>? InputShape { get; init; }

    /// <summary>The graph output holding the class scores when the graph has several outputs. Default: the only output.</summary>
    public string? OutputName { get; init; }

    /// <summary>Largest accepted .onnx file, in bytes (protobuf's own limit is 2 GiB). Default 2 GiB − 1.</summary>
    public long MaxModelBytes { get; init; } = int.MaxValue;

    /// <summary>Largest accepted single tensor (initializer or external-data block), in bytes. Default 2 GiB.</summary>
    public long MaxTensorBytes { get; init; } = 2L << 30;
}
