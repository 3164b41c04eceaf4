namespace Ebp.Onnx;

/// <summary>
/// An ONNX file could not be imported: it is not a readable ONNX model, it refers to data outside its
/// folder, or it holds an operator (or a form of one) the importer cannot build exactly. Nothing is
/// returned half-built: every module and tensor made before the failure is disposed.
/// </summary>
public sealed class OnnxImportException : Exception
{
    /// <summary>Creates the exception.</summary>
    public OnnxImportException(string message, Exception? inner = null) : base(message, inner) { }
}
