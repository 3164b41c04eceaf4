using System.Globalization;
using CsvHelper;
using CsvHelper.Configuration;
using System.Security.Cryptography;
using System.Text;

namespace Ebp.Audit;

/// <summary>One image to audit.</summary>
/// <param name="Key">The image's name in every output: its path relative to the input folder (or as written in the
/// manifest, relative to the manifest's folder), with '/' separators. Unique.</param>
/// <param name="Path">The full path of the image file.</param>
/// <param name="Label">The label as given (class name or 0-based index), or null.</param>
/// <param name="AnnotationPath">The full path of a VOC XML file, or null.</param>
/// <param name="Problem">Why the entry cannot be processed at all (e.g. a duplicate manifest row), or null.</param>
internal sealed record AuditInput(string Key, string Path, string? Label, string? AnnotationPath, string? Problem = null);

/// <summary>Finds the images of a folder or a CSV manifest.</summary>
internal static class InputCatalog
{
    /// <summary>
    /// All inputs, sorted by <see cref="AuditInput.Key"/> (ordinal), before sharding. Only paths are held, never images.
    /// </summary>
    /// <exception cref="AuditUsageException">The folder or manifest does not exist or the manifest is malformed.</exception>
    public static List<AuditInput> Load(AuditOptions o)
    {
        var list = o.InputFolder is not null
            ? FromFolder(o.InputFolder, o.AnnotationFolder, o.LabelFromFolder, exclude: o.OutputFolder)
            : FromManifest(o.ManifestPath!);
        list.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        return list;
    }

    /// <summary>SHA-256 over the sorted keys: shards of one job must have seen the same input.</summary>
    public static string Fingerprint(IEnumerable<AuditInput> sortedInputs)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var i in sortedInputs)
        {
            sha.AppendData(Encoding.UTF8.GetBytes(i.Key));
            sha.AppendData([0]);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>The images of a folder tree (hidden files and folders skipped; so is <paramref name="exclude"/>, the output folder).</summary>
    public static List<AuditInput> FromFolder(string folder, string? annotationFolder, bool labelFromFolder, string? exclude = null)
    {
        string? excluded = string.IsNullOrEmpty(exclude) ? null : System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(exclude)) + System.IO.Path.DirectorySeparatorChar;
        var root = System.IO.Path.GetFullPath(folder);
        if (!Directory.Exists(root)) throw new AuditUsageException($"The input folder '{folder}' does not exist.");
        string? annRoot = annotationFolder is null ? null : System.IO.Path.GetFullPath(annotationFolder);
        if (annRoot is not null && !Directory.Exists(annRoot)) throw new AuditUsageException($"The annotation folder '{annotationFolder}' does not exist.");
        var options = new EnumerationOptions
        {
            RecurseSubdirectories = true,
            IgnoreInaccessible = true,
            AttributesToSkip = FileAttributes.Hidden | FileAttributes.System,
            ReturnSpecialDirectories = false,
        };
        var list = new List<AuditInput>();
        foreach (var file in Directory.EnumerateFiles(root, "*", options))
        {
            if (!ImageFormats.IsImageFile(file)) continue;
            if (excluded is not null && file.StartsWith(excluded, StringComparison.Ordinal)) continue;
            var rel = System.IO.Path.GetRelativePath(root, file);
            var key = rel.Replace('\\', '/');
            var stem = System.IO.Path.ChangeExtension(rel, ".xml");
            string? ann = annRoot is not null ? System.IO.Path.Combine(annRoot, stem) : System.IO.Path.ChangeExtension(file, ".xml");
            if (!File.Exists(ann))
            {
                // VOC layout: JPEGImages/x.jpg with Annotations/x.xml.
                ann = annRoot is not null ? System.IO.Path.Combine(annRoot, System.IO.Path.GetFileNameWithoutExtension(file) + ".xml") : null;
                if (ann is not null && !File.Exists(ann)) ann = null;
            }
            string? label = null;
            if (labelFromFolder)
            {
                var parent = System.IO.Path.GetDirectoryName(rel);
                label = string.IsNullOrEmpty(parent) ? null : System.IO.Path.GetFileName(parent);
            }
            list.Add(new AuditInput(key, file, label, ann));
        }
        return list;
    }

    /// <summary>
    /// Reads a CSV manifest (RFC 4180: comma-separated, fields optionally in double quotes, "" inside quotes). The header
    /// names the columns, case-insensitively: <c>path</c> (or <c>image</c>, required), <c>label</c> and
    /// <c>annotation</c> (optional). Relative paths are relative to the manifest's folder. Empty lines and lines starting
    /// with '#' are ignored. A repeated path is reported (as a skipped entry) and only its first row is used.
    /// </summary>
    public static List<AuditInput> FromManifest(string manifestPath)
    {
        var full = System.IO.Path.GetFullPath(manifestPath);
        if (!File.Exists(full)) throw new AuditUsageException($"The manifest '{manifestPath}' does not exist.");
        var baseDir = System.IO.Path.GetDirectoryName(full)!;
        using var reader = new StreamReader(full, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        string[]? header = null;
        int pathCol = -1, labelCol = -1, annCol = -1;
        var list = new List<AuditInput>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int lineNo = 0;
        foreach (var (fields, line) in Csv.ReadRecords(reader))
        {
            lineNo = line;
            if (fields.Count == 1 && fields[0].Length == 0) continue;
            if (header is null)
            {
                if (fields[0].StartsWith('#')) continue;
                header = fields.Select(f => f.Trim().ToLowerInvariant()).ToArray();
                pathCol = Array.FindIndex(header, h => h is "path" or "image" or "file");
                labelCol = Array.IndexOf(header, "label");
                annCol = Array.FindIndex(header, h => h is "annotation" or "annotations" or "xml");
                if (pathCol < 0)
                    throw new AuditUsageException($"{manifestPath}: the header line needs a 'path' column (and optionally 'label' and 'annotation'); got: {string.Join(",", fields)}.");
                continue;
            }
            if (fields[0].StartsWith('#')) continue;
            string Field(int col) => col >= 0 && col < fields.Count ? fields[col].Trim() : "";
            var p = Field(pathCol);
            if (p.Length == 0)
                throw new AuditUsageException($"{manifestPath}, line {line}: the path is empty.");
            var key = p.Replace('\\', '/');
            if (key.StartsWith("./", StringComparison.Ordinal)) key = key[2..];
            var imagePath = System.IO.Path.GetFullPath(System.IO.Path.Combine(baseDir, p));
            var label = Field(labelCol);
            var ann = Field(annCol);
            string? annPath = ann.Length == 0 ? null : System.IO.Path.GetFullPath(System.IO.Path.Combine(baseDir, ann));
            if (!seen.Add(key))
            {
                list.Add(new AuditInput(key + $"#line{line}", imagePath, null, null, $"duplicate manifest entry (line {line}) for '{key}'; the first one is used"));
                continue;
            }
            list.Add(new AuditInput(key, imagePath, label.Length == 0 ? null : label, annPath));
        }
        if (header is null) throw new AuditUsageException($"{manifestPath}: the manifest is empty (it needs a header line with a 'path' column).");
        _ = lineNo;
        return list;
    }
}

/// <summary>RFC 4180 records by CsvHelper, with the line numbers and errors the manifest reports.</summary>
internal static class Csv
{
    /// <summary>
    /// Reads records (a quoted field may span lines; an empty line is one empty field; a quote inside an unquoted field
    /// is kept as text); yields the fields and the line number where the record starts. A quoted field that is not closed
    /// (or has text after its closing quote) is an <see cref="AuditUsageException"/> naming the line.
    /// </summary>
    public static IEnumerable<(List<string> Fields, int Line)> ReadRecords(TextReader reader)
    {
        string? bad = null;
        var config = new CsvConfiguration(CultureInfo.InvariantCulture)
        {
            IgnoreBlankLines = false,
            // CsvHelper reports both a stray quote in an unquoted field (kept as text, as RFC 4180 readers commonly do) and
            // a broken quoted field; only the second is an error.
            BadDataFound = args => { if (args.Field.StartsWith('"')) bad ??= args.Field; },
        };
        using var parser = new CsvParser(reader, config, leaveOpen: true);
        int start = 1;
        while (parser.Read())
        {
            var fields = new List<string>(Math.Max(1, parser.Count));
            for (int i = 0; i < parser.Count; i++) fields.Add(parser[i] ?? "");
            // CsvHelper parses a field when it is read, so bad quoting is known only now.
            if (bad is not null)
                throw new AuditUsageException(
                    $"CSV: a quoted field starting on line {start} is not closed, or has text after its closing quote (a quote inside a quoted field is written twice: \"\").");
            if (fields.Count == 0) fields.Add("");
            yield return (fields, start);
            start = parser.RawRow + 1;
        }
    }

    /// <summary>A field quoted as CsvHelper writes it (when it holds a comma, quote, CR or LF, or starts/ends with a space).</summary>
    public static string Escape(string? value)
    {
        if (string.IsNullOrEmpty(value)) return "";
        using var text = new StringWriter(CultureInfo.InvariantCulture);
        using (var csv = new CsvWriter(text, CultureInfo.InvariantCulture, leaveOpen: true)) csv.WriteField(value);
        return text.ToString();
    }
}
