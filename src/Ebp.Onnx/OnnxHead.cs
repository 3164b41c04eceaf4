namespace Ebp.Onnx;

/// <summary>The normalisation after the logits that the importer recognised and left out of the module.</summary>
public enum OnnxHead
{
    /// <summary>The graph output is the logits.</summary>
    None,
    /// <summary>A final <c>Softmax</c>: the module returns the logits before it, which EBP seeds.</summary>
    Softmax,
    /// <summary>A final <c>LogSoftmax</c>.</summary>
    LogSoftmax,
}
