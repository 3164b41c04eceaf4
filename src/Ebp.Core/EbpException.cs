namespace Ebp;

/// <summary>
/// A saliency rule failed while the backward pass ran. TorchSharp aborts the process when a custom
/// backward throws, so rules catch, return zeros, and the failure is rethrown here afterwards with the
/// name of the layer whose rule failed.
/// </summary>
public sealed class EbpRuleException : Exception
{
    /// <summary>The failure <paramref name="inner"/> of the rule of layer <paramref name="layerName"/>.</summary>
    /// <param name="layerName">The module name (as in the model's state_dict) whose rule failed.</param>
    /// <param name="inner">What the rule threw.</param>
    public EbpRuleException(string layerName, Exception inner)
        : base($"The saliency rule of layer '{layerName}' failed during the backward pass: {inner.Message}", inner)
        => LayerName = layerName;

    /// <summary>The rule could not be set up while the layer ran in the forward pass.</summary>
    internal EbpRuleException(string layerName, string layerType, Exception inner)
        : base($"The saliency rule of layer '{layerName}' ({layerType}) cannot run on it: " +
               $"{SaliencyExplainer.WithoutNativeBacktrace(inner.Message)} Give the layer another rule with SaliencyOptions.Composite, " +
               "or choose a saliency layer above it.", inner)
        => LayerName = layerName;

    /// <summary>The module name (as in the model's state_dict) whose rule failed.</summary>
    public string LayerName { get; }
}

/// <summary>
/// A module in the path from the saliency layer to the output has parameters but no Excitation
/// Backprop rule (for example ConvTranspose2d, LayerNorm or GroupNorm).
/// </summary>
public sealed class UnsupportedLayerException : NotSupportedException
{
    /// <summary>Layer <paramref name="layerName"/> of type <paramref name="layerType"/> has no rule; the message says what to do.</summary>
    /// <param name="layerName">The module name (as in the model's state_dict).</param>
    /// <param name="layerType">The module's type name (e.g. <c>LayerNorm</c>).</param>
    public UnsupportedLayerException(string layerName, string layerType)
        : this(layerName, layerType, $"Layer '{layerName}' ({layerType}) lies between the saliency layer and the output but has no Excitation " +
               "Backprop rule (rules exist for Conv1d/2d/3d, Linear, AvgPool, AdaptiveAvgPool, BatchNorm and ResidualSum). " +
               "Choose a saliency layer above it, give it a rule with SaliencyOptions.Composite " +
               $"(e.g. Composite.ExcitationBackprop.WithRule(\"{layerName}\", LayerRule.PassThrough), docs/EXTENDING.md), or let its ordinary gradient pass with " +
               $"SaliencyOptions.PlainGradientLayers = [\"{layerName}\"] (or PlainGradientForUnsupportedLayers = true).")
    {
    }

    private UnsupportedLayerException(string layerName, string layerType, string message) : base(message)
    {
        LayerName = layerName;
        LayerType = layerType;
    }

    /// <summary>The explained model itself has parameters of its own, used in its forward outside any submodule.</summary>
    internal static UnsupportedLayerException ForModel(string modelType) => new("", modelType,
        $"The model itself ({modelType}) has parameters of its own (outside its submodules), which its forward may use " +
        "between the saliency layer and the output, and no Excitation Backprop rule covers them. Move that computation into a submodule and give it a rule, give the model's " +
        $"type a rule with SaliencyOptions.Composite (e.g. Composite.ExcitationBackprop.WithRule<{modelType}>(LayerRule.Gradient)), " +
        "or let its ordinary gradient pass with SaliencyOptions.PlainGradientForUnsupportedLayers = true.");

    /// <summary>The module name (as in the model's state_dict) without a rule.</summary>
    public string LayerName { get; }

    /// <summary>The module's type name.</summary>
    public string LayerType { get; }
}

/// <summary>
/// A module in the path from the saliency layer to the output runs an autograd function of your own
/// (a <c>torch.autograd.SingleTensorFunction</c> or <c>MultiTensorFunction</c> subclass). TorchSharp 0.107 aborts the
/// process when such a function's backward throws, and neither Ebp nor the caller can catch that; so the
/// backward pass does not start unless you opt in.
/// </summary>
public sealed class CustomAutogradFunctionException : NotSupportedException
{
    internal CustomAutogradFunctionException(string layerName, string layerType, string functionType)
        : base((layerName.Length == 0 ? $"The model's own forward ({layerType})" : $"Layer '{layerName}' ({layerType})") +
               $" runs the autograd function {functionType} of your own between the saliency layer and the output. " +
               "TorchSharp 0.107 aborts the process when such a function's backward throws (no exception reaches Ebp or you), " +
               "so Ebp does not run it unasked. If its backward is known to work, let it run with " +
               (layerName.Length == 0 ? "" : $"SaliencyOptions.PlainGradientLayers = [\"{layerName}\"] (or ") +
               "SaliencyOptions.PlainGradientForUnsupportedLayers = true" + (layerName.Length == 0 ? "" : ")") +
               "; otherwise choose a saliency layer above it.")
    {
        LayerName = layerName;
        LayerType = layerType;
        FunctionType = functionType;
    }

    /// <summary>The module name (as in the model's state_dict) whose forward runs the function; "" for the model itself.</summary>
    public string LayerName { get; }
    /// <summary>The module's type name.</summary>
    public string LayerType { get; }
    /// <summary>The function's type name.</summary>
    public string FunctionType { get; }
}

/// <summary>
/// The model failed in its own forward pass (a layer that cannot run on this input or as configured). The
/// <see cref="Exception.InnerException"/> is the layer's own error, with libtorch's full text.
/// </summary>
public sealed class ModelForwardException : ArgumentException
{
    internal ModelForwardException(long[] inputShape, string layerName, string layerType, Exception inner)
        : base($"The input of shape [{string.Join(", ", inputShape)}] does not fit the model, or the model cannot run: " +
               (layerName.Length == 0 ? $"the model's own forward ({layerType})" : $"layer '{layerName}' ({layerType})") +
               $" failed with {inner.GetType().Name}: {SaliencyExplainer.WithoutNativeBacktrace(inner.Message)} " +
               "Check the input's shape and value range against the model, and the layer's configuration.", "input", inner)
    {
        LayerName = layerName;
        LayerType = layerType;
    }

    /// <summary>The innermost module (as in the model's state_dict) that was running; "" for the model's own forward.</summary>
    public string LayerName { get; }
    /// <summary>The module's type name.</summary>
    public string LayerType { get; }
}
