using System.Text;
using Onnx;

namespace Ebp.Onnx.Internal;

/// <summary>
/// Module names from the ONNX graph. PyTorch (1.13+) names nodes by module scope, <c>/layer1/layer1.0/conv1/Conv</c>:
/// that becomes the module's own name, <c>layer1.0.conv1</c>. Other exporters' node names are sanitised;
/// nameless nodes take their weight's name or their op type.
/// </summary>
internal sealed class Naming
{
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);
    private readonly HashSet<string> _containers = new(StringComparer.Ordinal);

    /// <summary>Scopes that hold other scopes (<c>layer1</c>, <c>layer1.0</c>), in first-seen order.</summary>
    public IReadOnlySet<string> Containers => _containers;

    public Naming(IEnumerable<NodeProto> nodes)
    {
        foreach (var n in nodes)
        {
            var path = ScopePath(n.Name);
            if (path is null) continue;
            // Every proper dotted prefix of a node's module path is a container scope (layer3, layer3.0 of layer3.0.conv1).
            var parts = string.Join('.', path).Split('.');
            for (int i = 1; i < parts.Length; i++) _containers.Add(string.Join('.', parts.Take(i)));
        }
    }

    /// <summary>The module path of a PyTorch scoped node name, without the op segment; null if not scoped.</summary>
    public static List<string>? ScopePath(string nodeName)
    {
        if (!nodeName.StartsWith('/')) return null;
        var segs = nodeName.Trim('/').Split('/');
        var path = new List<string>();
        for (int i = 0; i < segs.Length - 1; i++)
        {
            var s = segs[i];
            // torch writes a Sequential child with its parent's name: /layer1/layer1.0/... and /downsample/downsample.0.
            if (path.Count > 0 && s.StartsWith(path[^1] + ".", StringComparison.Ordinal)) path[^1] = s;
            else path.Add(s);
        }
        return path;
    }

    public string For(NodeProto node, int index, string? weightName)
    {
        string name;
        var path = ScopePath(node.Name);
        var op = node.Name.Length > 0 ? node.Name[(node.Name.LastIndexOf('/') + 1)..] : node.OpType;
        if (path is { Count: > 0 })
        {
            var module = string.Join('.', path);
            name = _containers.Contains(module) ? module + "." + op : module;
        }
        else if (path is not null) name = op;
        else if (weightName is not null && weightName.EndsWith(".weight", StringComparison.Ordinal) && !weightName.StartsWith("onnx::", StringComparison.Ordinal))
            name = weightName[..^".weight".Length];
        else name = node.Name.Length > 0 ? node.Name : $"{node.OpType}_{index}";
        return Unique(Sanitise(name));
    }

    public bool TryReserve(string name) => _used.Add(name);

    public string Unique(string name)
    {
        if (_used.Add(name)) return name;
        for (int i = 1; ; i++)
            if (_used.Add($"{name}_{i}")) return $"{name}_{i}";
    }

    private static string Sanitise(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (var c in name) sb.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-' ? c : '_');
        var s = sb.ToString().Trim('.');
        return s.Length == 0 ? "node" : s;
    }
}
