using System.Text;

namespace Ebp.Visualization;

/// <summary>
/// Writes files atomically: the content goes to a hidden temporary file in the same folder, is flushed to disk, and
/// is then renamed over the target. A reader (or a crash) never sees a half-written file. The one home of atomic
/// writes for PNGs (<see cref="Figure.SavePng"/>), saved pipelines (Ebp.MLNet) and the audit tool's reports.
/// </summary>
public static class AtomicFile
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>Writes <paramref name="text"/> as UTF-8 (no BOM).</summary>
    public static void WriteAllText(string path, string text) =>
        Write(path, stream =>
        {
            var bytes = Utf8.GetBytes(text);
            stream.Write(bytes, 0, bytes.Length);
        });

    /// <summary>Writes what <paramref name="write"/> puts into the stream.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var tmp = Path.Combine(dir, "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp");
        try
        {
            using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>Writes text produced line by line through a <see cref="TextWriter"/> ('\n' line ends).</summary>
    public static void WriteText(string path, Action<TextWriter> write) =>
        Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, Utf8, 1 << 16, leaveOpen: true) { NewLine = "\n" };
            write(writer);
            writer.Flush();
        });

    /// <summary>Copies a file atomically (temporary copy, then rename).</summary>
    public static void Copy(string source, string destination) =>
        Write(destination, stream =>
        {
            using var src = File.OpenRead(source);
            src.CopyTo(stream);
        });

    /// <summary>Removes leftovers of interrupted atomic writes (<c>.name.xxxxxxxx.tmp</c>) in a folder tree.</summary>
    public static void CleanTemporaries(string folder)
    {
        if (!Directory.Exists(folder)) return;
        foreach (var f in Directory.EnumerateFiles(folder, ".*.tmp", SearchOption.AllDirectories))
        {
            try { File.Delete(f); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
