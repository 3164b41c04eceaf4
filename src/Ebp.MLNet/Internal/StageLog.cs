using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Runtime;

namespace Ebp.MLNet.Internal;

/// <summary>
/// The stage's messages through ML.NET's own logging (<c>MLContext.Log</c>), as ML.NET's transforms write them: a host
/// registered on the context's environment, one channel per message, source name <c>ComputeSaliency</c>.
/// </summary>
internal sealed class StageLog
{
    private readonly IHost? _host;

    private StageLog(IHost? host) => _host = host;

    /// <summary>No environment: messages are dropped (a stage made with <c>new SaliencyEstimator(options)</c>).</summary>
    public static readonly StageLog None = new(null);

    public static StageLog For(IHostEnvironment? env) => env is null ? None : new StageLog(env.Register("ComputeSaliency"));

    /// <summary>
    /// The environment behind a transforms catalog. ML.NET exposes it only to its own assemblies (IInternalCatalog), so
    /// it is read by reflection; if a later ML.NET hides it differently, the stage simply does not log.
    /// </summary>
    public static IHostEnvironment? EnvironmentOf(TransformsCatalog catalog)
    {
        try
        {
            var field = typeof(TransformsCatalog).GetField("_env", BindingFlags.Instance | BindingFlags.NonPublic);
            if (field?.GetValue(catalog) is IHostEnvironment env) return env;
            var property = typeof(TransformsCatalog).GetInterfaces()
                .Select(i => i.GetProperty("Environment", BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
                .FirstOrDefault(p => p is not null && typeof(IHostEnvironment).IsAssignableFrom(p.PropertyType));
            return property?.GetValue(catalog) as IHostEnvironment;
        }
        catch (Exception e) when (e is TargetException or MemberAccessException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>
    /// A channel for one operation (a Fit, a cursor, a prediction row), like ML.NET's transforms open one per operation;
    /// dispose it when the operation ends. Null when the stage has no context.
    /// </summary>
    public IChannel? Start() => _host?.Start("ComputeSaliency");
}
