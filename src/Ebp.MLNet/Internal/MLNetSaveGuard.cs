using System.Reflection;
using Microsoft.ML;

namespace Ebp.MLNet.Internal;

/// <summary>
/// <c>mlContext.Model.Save(model, schema, path)</c> creates the file before it asks each stage to save itself, so when
/// the saliency stage refuses, a half-written, unloadable zip would be left behind. ML.NET gives a stage no public way to
/// its output, so the file stream is found by reflection (ModelSaveContext → RepositoryWriter → ZipArchive → FileStream)
/// and the file is removed. Where that is not possible (another ML.NET version; Windows, where an open file cannot be
/// deleted) the file is at least emptied, and the exception still says what to use instead.
/// </summary>
internal static class MLNetSaveGuard
{
    private const BindingFlags Fields = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;

    public static void DiscardTarget(ModelSaveContext ctx)
    {
        try
        {
            var repository = ctx.GetType().GetField("Repository", Fields)?.GetValue(ctx);
            var archive = repository?.GetType().GetField("_archive", Fields)?.GetValue(repository);
            if (archive is null) return;
            var file = archive.GetType().GetFields(Fields).Select(f => f.GetValue(archive)).OfType<FileStream>().FirstOrDefault();
            if (file is null || !file.CanWrite) return;
            file.SetLength(0);
            file.Flush();
            if (!OperatingSystem.IsWindows()) File.Delete(file.Name); // the open handle keeps writing to an unlinked file
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or MemberAccessException or NotSupportedException or ObjectDisposedException)
        {
            // Best effort: the NotSupportedException that follows is the answer either way.
        }
    }
}
