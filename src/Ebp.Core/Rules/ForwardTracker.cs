using System.Collections;
using System.Collections.Concurrent;
using System.Reflection;
using TorchSharp;
using static TorchSharp.torch;

namespace Ebp.Rules;

/// <summary>
/// Which modules are running in a forward pass, innermost last, so that a failure inside the model can name its
/// layer; and which of them ran an autograd function of the user's own. TorchSharp 0.107 aborts the process when
/// such a function's backward throws, and offers no <c>grad_fn</c>; what it does keep is a list of every live
/// managed autograd node (<c>torch.autograd.Node.AliveNodes</c>, one <c>Node&lt;TFunction&gt;</c> per application).
/// A node that appears while a module is the innermost running one was made by that module's own code.
/// Should a later TorchSharp drop that list, the check finds nothing and the layer names still work. The list is
/// shared by all threads and its nodes do not say which thread made them, so where the process has such functions
/// (<see cref="CustomFunctions"/>) Ebp's forward passes take turns (<see cref="PassGate"/>): another Ebp call's
/// function is never credited here. A user's function run outside Ebp
/// by another thread at the same moment still is (a false alarm, which the opt-in silences).
/// </summary>
internal sealed class ForwardTracker
{
    /// <summary>
    /// Held, in every thread, from <see cref="Begin"/> to the end of an Ebp forward pass: nodes that appear meanwhile
    /// come from this pass (or from code outside Ebp). Backward passes, the bulk of a call, still run side by side.
    /// </summary>
    public static readonly object PassGate = new();

    private static readonly IList? AliveNodes = typeof(torch.autograd.AutogradContext).Assembly
        .GetType("TorchSharp.torch+autograd+Node")
        ?.GetField("AliveNodes", BindingFlags.NonPublic | BindingFlags.Static)?.GetValue(null) as IList;

    /// <summary>Per node type, the user's function type name, or null for Ebp's own rules and anything else.</summary>
    private static readonly ConcurrentDictionary<Type, string?> FunctionNames = new();

    private readonly List<Frame> _running = new();
    /// <summary>Every node alive at the last look: TorchSharp appends new nodes, so the unknown ones form the list's tail.</summary>
    private readonly HashSet<object> _known = new(ReferenceEqualityComparer.Instance);

    internal sealed class Frame(string name, nn.Module module)
    {
        public string Name { get; } = name;
        public nn.Module Module { get; } = module;
        /// <summary>The first of the user's autograd functions this module's own code ran, if any.</summary>
        public string? CustomFunction { get; set; }
        /// <summary>Whether the module's output depends on the saliency point; null where the hook cannot see its output.</summary>
        public bool? InPath { get; set; }
    }

    /// <summary>The innermost module still running, e.g. the one whose forward just threw.</summary>
    public Frame? Current => _running.Count > 0 ? _running[^1] : null;

    /// <summary>Starts a forward pass: nothing runs, and every node alive now belongs to an earlier pass.</summary>
    public void Begin()
    {
        _running.Clear();
        _known.Clear();
        if (AliveNodes is null) return;
        lock (AliveNodes)
            foreach (var node in AliveNodes) _known.Add(node!);
    }

    public void Enter(string name, nn.Module module)
    {
        Attribute();
        _running.Add(new Frame(name, module));
    }

    /// <summary>Credits new nodes to the current module (whose forward made them).</summary>
    public void Attribute()
    {
        var function = NewCustomFunction();
        if (function is not null && Current is { } frame) frame.CustomFunction ??= function;
    }

    /// <summary>Ends <paramref name="module"/>'s call and returns its frame.</summary>
    public Frame? Leave(nn.Module module)
    {
        Attribute();
        // Frames above it belong to calls that threw inside this module's forward, which caught the exception itself.
        int at = _running.FindLastIndex(f => ReferenceEquals(f.Module, module));
        if (at < 0) return null;
        var frame = _running[at];
        _running.RemoveRange(at, _running.Count - at);
        if (_running.Count == 0) _known.Clear(); // the pass is over: hold no nodes until the next one
        return frame;
    }

    /// <summary>The user's function among the nodes made since the last look, if any; costs one step per new node.</summary>
    private string? NewCustomFunction()
    {
        if (AliveNodes is null) return null;
        string? found = null;
        lock (AliveNodes)
        {
            for (int i = AliveNodes.Count - 1; i >= 0; i--)
            {
                var node = AliveNodes[i];
                if (node is null || !_known.Add(node)) break;
                found = FunctionNames.GetOrAdd(node.GetType(), UserFunctionName) ?? found;
            }
        }
        return found;
    }

    private static string? UserFunctionName(Type nodeType)
    {
        var function = nodeType.IsGenericType ? nodeType.GetGenericArguments()[0] : null;
        if (function is null || function.Assembly == typeof(ForwardTracker).Assembly) return null;
        CustomFunctions.Seen();
        return function.FullName ?? function.Name;
    }
}

/// <summary>The forward hooks every TorchSharp module has, whatever its forward's signature.</summary>
internal static class ModuleHooks
{
    /// <summary>
    /// Registers <paramref name="hook"/> as <paramref name="method"/> (<c>register_forward_pre_hook</c> or
    /// <c>register_forward_hook</c>) and returns its remover, or null for a module without hooks.
    /// </summary>
    public static Action? Add(nn.Module module, string method, Action<nn.Module> hook)
    {
        var register = module.GetType().GetMethods(BindingFlags.Public | BindingFlags.Instance)
            .FirstOrDefault(m => m.Name == method && m.GetParameters() is { Length: 1 } ps && ps[0].ParameterType == typeof(Action<nn.Module>));
        var remover = register?.Invoke(module, new object[] { hook });
        var remove = remover?.GetType().GetMethod("remove");
        return remover is null || remove is null ? null : () => remove.Invoke(remover, null);
    }
}
