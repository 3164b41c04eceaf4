using System.Collections.Concurrent;
using System.Reflection;
using TorchSharp;

namespace Ebp.Rules;

/// <summary>
/// Whether the process may run autograd functions of the user's own. Only then must Ebp's forward passes take turns
/// (<see cref="ForwardTracker.PassGate"/>): TorchSharp's list of live nodes does not say which thread made a node, so
/// a pass could be blamed for another call's function. Without such functions (ML.NET and ONNX pipelines, the model
/// zoo) forward passes on separate models run side by side.
/// </summary>
internal static class CustomFunctions
{
    private static readonly ConcurrentDictionary<Assembly, bool> Scanned = new();
    private static volatile bool _exist;

    /// <summary>A node of a user's function was seen (e.g. a type made at run time that no scan found).</summary>
    public static void Seen() => _exist = true;

    /// <summary>True once any loaded assembly other than TorchSharp and Ebp.Core defines an autograd function.</summary>
    public static bool MayExist()
    {
        if (_exist) return true;
        foreach (var assembly in AppDomain.CurrentDomain.GetAssemblies())
            if (Scanned.GetOrAdd(assembly, Defines))
            {
                _exist = true;
                return true;
            }
        return false;
    }

    private static bool Defines(Assembly assembly)
    {
        var torchSharp = typeof(torch).Assembly;
        if (assembly == torchSharp || assembly == typeof(CustomFunctions).Assembly || assembly.IsDynamic) return false;
        // Only an assembly compiled against TorchSharp can derive from its function types; this skips the framework.
        if (!assembly.GetReferencedAssemblies().Any(a => a.Name == torchSharp.GetName().Name)) return false;
        Type?[] types;
        try
        {
            types = assembly.GetTypes();
        }
        catch (ReflectionTypeLoadException ex)
        {
            types = ex.Types;
        }
        return types.Any(t => t is not null && IsFunction(t));
    }

    private static bool IsFunction(Type type)
    {
        for (var b = type.BaseType; b is not null; b = b.BaseType)
            if (b.IsGenericType && b.GetGenericTypeDefinition() is var d
                && (d == typeof(torch.autograd.SingleTensorFunction<>) || d == typeof(torch.autograd.MultiTensorFunction<>)))
                return true;
        return false;
    }
}
