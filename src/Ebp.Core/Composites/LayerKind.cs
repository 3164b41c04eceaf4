namespace Ebp.Composites;

/// <summary>How a module's backward pass is treated under Excitation Backprop.</summary>
internal enum LayerKind
{
    /// <summary>Ordinary gradient (ReLU, MaxPool, Dropout, Flatten, containers, parameterless ops).</summary>
    Gradient,
    /// <summary>x ⊙ layerᵀ(G ⊘ layer(x; W⁺)): Conv, Linear, average pooling.</summary>
    Excitation,
    /// <summary>Signal passes unchanged: BatchNorm.</summary>
    PassThrough,
    /// <summary>Split in proportion to the inputs: <see cref="Modules.ResidualSum"/>.</summary>
    ProportionalSum,
    /// <summary>Has parameters (or is a known non-linear mixing layer) but no rule: an error in the path.</summary>
    Unsupported,
}
